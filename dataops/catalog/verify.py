"""Image bytes for anything a person or a labeler sees, checked against the image's sha256.

Files at a catalogued location can be overwritten in place, with the same size and time
stamps, so nothing short of hashing the bytes that are about to be shown proves they are the
image's. Media, thumbnails, contact sheets and audit reports read through ``read_verified``;
bytes that hash differently are never returned, and the location is recorded as stale.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

from dataops.catalog.errors import ImageChanged, ImageUnavailable
from dataops.errors import DataopsError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dataops.catalog.models import Image
    from dataops.storage import BlobStore


def _read(image: Image, store: BlobStore | None) -> bytes:
    from dataops.storage import get_store, read_uri

    try:
        if image.blob_key:
            return (store or get_store()).get(image.blob_key)
        uri = image.uri
        if "://" not in uri and (not os.path.isabs(uri) or os.path.normpath(uri) != uri):
            raise ImageUnavailable(f"image {image.id} has no readable location")
        return read_uri(uri)
    except ImageUnavailable:
        raise
    except (DataopsError, OSError, ValueError) as exc:
        raise ImageUnavailable(f"the bytes of image {image.id} cannot be read") from exc


def read_verified(
    image: Image, session: Session | None = None, store: BlobStore | None = None
) -> bytes:
    """The image's bytes, from the blob store copy or its original location, only if they
    hash to its sha256; otherwise ``ImageChanged`` (409), and with a ``session`` the location
    is recorded as stale in it (a route answering 409 returns the error, so it commits)."""
    data = _read(image, store)
    found = hashlib.sha256(data).hexdigest()
    if found == image.sha256:
        return data
    if image.blob_key:
        raise ImageChanged(
            f"image {image.id}: its blob store copy no longer matches its sha256 and is not "
            "served; restore the copy from the original with `dataops ingest --copy`"
        )
    if session is not None:
        from dataops.catalog import service

        service.mark_stale(session, image.id, image.uri, found)
    raise ImageChanged(
        f"image {image.id}: the file at its location now holds other bytes (its sha256 "
        "differs), so it is not served; the location is marked stale — restore the file or "
        "ingest the new one as a new image"
    )
