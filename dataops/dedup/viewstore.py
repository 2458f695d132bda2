"""Each image's view hashes, computed once and kept in ``dup_views`` for every later run.

Views need pixels, which a run otherwise never reads, so an image's views are computed the
first time a run sees it (a new image, or one ingested before views existed) and stored in
the run's write phase, with its edges. A crash loses them with the rest of the run and the next run computes
them again; they depend only on the image's bytes, which its sha256 pins. An image that
cannot be read gets an empty row (no views) so it is not retried on every run; ``--full``
retries those. The geometric stage reads pixels the same way (:func:`pixel_source`).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from typing import cast

import numpy as np
from numpy.typing import NDArray
from PIL import Image as PILImage
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from dataops.catalog.models import Image
from dataops.database.dialect import insert
from dataops.dedup.models import DupViews
from dataops.dedup.stages import PixelSource
from dataops.dedup.views import VIEW_NAMES, Views, ViewTable, view_hashes, working_gray
from dataops.errors import DataopsError

SLOTS = len(VIEW_NAMES)
RECORD = 1 + 16 * SLOTS
"""Packed size: a presence mask byte, then (pHash, dHash) per view slot, little-endian."""
_MASK64 = (1 << 64) - 1
_CHUNK = 500


def pack(views: Views | None) -> bytes:
    """One image's row; empty bytes for an image that could not be read."""
    if views is None:
        return b""
    mask = 0
    codes = np.zeros(2 * SLOTS, dtype="<u8")
    for k, h in views.codes():
        mask |= 1 << k
        codes[2 * k] = h.phash & _MASK64
        codes[2 * k + 1] = h.dhash & _MASK64
    return bytes([mask]) + codes.tobytes()


def unpack(ids: Sequence[int] | NDArray[np.int64], blobs: Sequence[bytes]) -> ViewTable:
    """The view rows of many images (those with empty rows contribute none)."""
    full = [k for k, blob in enumerate(blobs) if len(blob) == RECORD]
    if not full:
        empty = np.empty(0, dtype=np.uint64)
        return ViewTable(np.empty(0, np.int64), np.empty(0, np.int8), empty, empty)
    raw = np.frombuffer(b"".join(blobs[k] for k in full), dtype=np.uint8).reshape(-1, RECORD)
    codes = raw[:, 1:].copy().view("<u8").reshape(-1, SLOTS, 2).astype(np.uint64)
    present = (raw[:, :1].astype(np.int64) >> np.arange(SLOTS)) & 1 == 1
    rows, view = np.nonzero(present)
    image_ids = np.asarray(ids, dtype=np.int64)[np.asarray(full, dtype=np.int64)]
    return ViewTable(
        ids=image_ids[rows],
        view=view.astype(np.int8),
        phash=codes[rows, view, 0],
        dhash=codes[rows, view, 1],
    )


def stored_ids(session: Session, *, readable_only: bool = False) -> NDArray[np.int64]:
    """Ids of images that have a views row (``readable_only``: a non-empty one)."""
    query = select(DupViews.image_id)
    if readable_only:
        query = query.where(DupViews.codes != b"")
    return np.sort(np.fromiter(session.scalars(query), dtype=np.int64))


def load_views(
    session: Session, ids: NDArray[np.int64], extra: Mapping[int, bytes] | None = None
) -> ViewTable:
    """The views of ``ids`` (sorted), one row per (image, view): the stored rows, with
    ``extra`` (rows computed this run, not stored yet) taking precedence."""
    extra = extra or {}
    found_ids: list[int] = list(extra)
    blobs: list[bytes] = list(extra.values())
    for image_id, codes in session.execute(select(DupViews.image_id, DupViews.codes)):
        if image_id not in extra:
            found_ids.append(image_id)
            blobs.append(codes)
    table = unpack(found_ids, blobs)
    keep = np.isin(table.ids, ids)
    order = np.lexsort((table.view[keep], table.ids[keep]))
    return ViewTable(
        table.ids[keep][order],
        table.view[keep][order],
        table.phash[keep][order],
        table.dhash[keep][order],
    )


def _gray(image: Image) -> NDArray[np.uint8] | None:
    """Working pixels of a verified image; None when unreadable. Reads only: a run writes
    nothing before its write phase (on SQLite that would hold the write lock)."""
    from dataops.catalog.verify import read_verified

    try:
        data = read_verified(image)
        with PILImage.open(io.BytesIO(data)) as img:
            return working_gray(img)
    except (DataopsError, OSError, ValueError, PILImage.DecompressionBombError):
        return None


def _images(session: Session, ids: Iterable[int]) -> Iterable[Image]:
    todo = list(ids)
    for start in range(0, len(todo), _CHUNK):
        part = todo[start : start + _CHUNK]
        yield from session.scalars(select(Image).where(Image.id.in_(part)).order_by(Image.id))


def compute_views(session: Session, ids: NDArray[np.int64]) -> dict[int, bytes]:
    """The packed views of ``ids``, decoding each image once; stored by :func:`store_views`
    in the run's write phase."""
    out: dict[int, bytes] = {}
    for image in _images(session, ids.tolist()):
        gray = _gray(image)
        out[image.id] = pack(None if gray is None else view_hashes(gray))
        session.expunge(image)
    return out


def store_views(session: Session, rows: Mapping[int, bytes], *, replace: bool = False) -> None:
    """Store computed views; with ``replace``, rewrite rows that exist (a full run retrying
    images that were unreadable)."""
    table = cast(Table, DupViews.__table__)
    items = sorted(rows.items())
    for start in range(0, len(items), _CHUNK):
        stmt = insert(session, table)
        if replace:
            stmt = stmt.on_conflict_do_update(
                index_elements=[table.c.image_id], set_={"codes": stmt.excluded.codes}
            )
        else:
            stmt = stmt.on_conflict_do_nothing()
        part = items[start : start + _CHUNK]
        session.execute(stmt, [{"image_id": i, "codes": c} for i, c in part])


def pixel_source(session: Session) -> PixelSource:
    """Image id -> its working grayscale pixels, read and verified (None when unreadable)."""

    def pixels(image_id: int) -> NDArray[np.uint8] | None:
        image = session.get(Image, image_id)
        return None if image is None else _gray(image)

    return pixels
