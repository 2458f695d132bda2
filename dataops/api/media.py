"""Image bytes for HTTP responses, always re-encoded from pixels.

Nothing is ever served as stored: the image is decoded, turned upright
(``ImageOps.exif_transpose``), its pixels copied into a fresh image and encoded again, so
EXIF (GPS, serial numbers, owner names), XMP, comments and ICC profiles never leave the
service, and a stored file that is not an image can never be served as bytes.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dataops.errors import Conflict, DataopsError, NotFound

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from dataops.catalog.models import Image

JPEG_QUALITY = 90


class ImageUnavailable(NotFound):
    """The catalog knows the image but its bytes cannot be read."""

    code = "image_unavailable"


class UnservableImage(Conflict):
    """The bytes are there but do not decode (typically a quarantined image)."""

    code = "image_undecodable"


@dataclass(frozen=True)
class Rendered:
    data: bytes
    media_type: str


def load_bytes(image: Image) -> bytes:
    """From the blob store when the catalog holds a copy, from the original location otherwise."""
    from dataops.storage import get_store, read_uri

    try:
        if image.blob_key:
            return get_store().get(image.blob_key)
        uri = image.uri
        if "://" not in uri and (not os.path.isabs(uri) or os.path.normpath(uri) != uri):
            raise ImageUnavailable(f"image {image.id} has no readable location")
        return read_uri(uri)
    except ImageUnavailable:
        raise
    except (DataopsError, OSError, ValueError) as exc:
        raise ImageUnavailable(f"the bytes of image {image.id} cannot be read") from exc


def _open(data: bytes, *, max_pixels: int, draft_to: int | None) -> PILImage:
    from PIL import Image as PIL
    from PIL import ImageOps

    try:
        img = PIL.open(io.BytesIO(data))
        width, height = img.size
        if width * height > max_pixels:
            raise UnservableImage(f"image is {width}x{height}, over the {max_pixels}-pixel limit")
        if draft_to is not None and img.format == "JPEG":
            img.draft("RGB", (draft_to, draft_to))
        img.load()
        return ImageOps.exif_transpose(img)
    except UnservableImage:
        raise
    except Exception as exc:  # PIL raises many types for undecodable input
        raise UnservableImage("the stored image cannot be decoded") from exc


def _normalise(img: PILImage) -> PILImage:
    """8-bit RGB/L, with alpha kept where there is one."""
    import numpy as np
    from PIL import Image as PIL

    if img.mode in ("RGB", "L", "RGBA", "LA"):
        return img
    if img.mode in ("P", "PA"):
        has_alpha = img.mode == "PA" or "transparency" in img.info
        return img.convert("RGBA" if has_alpha else "RGB")
    if img.mode.startswith("I") or img.mode == "F":
        pixels = np.asarray(img, dtype=np.float64)
        if pixels.size and pixels.max() > 255:
            pixels = pixels / 257.0
        return PIL.fromarray(pixels.clip(0, 255).astype(np.uint8), mode="L")
    return img.convert("RGB")


def _encode(img: PILImage) -> Rendered:
    from PIL import Image as PIL

    img = _normalise(img)
    # A fresh image carries no info dict: no EXIF, XMP, comment, ICC profile or text chunks.
    clean = PIL.frombytes(img.mode, img.size, img.tobytes())
    out = io.BytesIO()
    if clean.mode in ("RGBA", "LA"):
        clean.save(out, format="PNG", optimize=False)
        return Rendered(out.getvalue(), "image/png")
    clean.save(out, format="JPEG", quality=JPEG_QUALITY)
    return Rendered(out.getvalue(), "image/jpeg")


def clean_image(data: bytes, *, max_pixels: int) -> Rendered:
    """The full image, upright and without metadata."""
    return _encode(_open(data, max_pixels=max_pixels, draft_to=None))


def thumbnail(data: bytes, size: int, *, max_pixels: int) -> Rendered:
    """At most `size` pixels on the long edge; JPEGs decode at reduced scale (draft mode)."""
    img = _open(data, max_pixels=max_pixels, draft_to=size)
    img.thumbnail((size, size))
    return _encode(img)
