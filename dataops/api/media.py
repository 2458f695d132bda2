"""Image bytes for HTTP responses, always re-encoded from pixels.

Nothing is ever served as stored: the image is decoded, turned upright
(``ImageOps.exif_transpose``), its pixels copied into a fresh image and encoded again, so
EXIF (GPS, serial numbers, owner names), XMP, comments and ICC profiles never leave the
service, and a stored file that is not an image can never be served as bytes.

Bytes are read through ``catalog.verify.read_verified``: only bytes that hash to the image's
sha256 are rendered. Renderings are cached in memory by sha256 (identity of the content, so a
cached rendering is always of the right pixels); the file is still read and hashed on every
request, so a changed file answers 409 even when its old rendering is cached.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dataops.errors import Conflict

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
    from sqlalchemy.orm import Session

    from dataops.catalog.models import Image

JPEG_QUALITY = 90


class UnservableImage(Conflict):
    """The bytes are there but do not decode (typically a quarantined image)."""

    code = "image_undecodable"


@dataclass(frozen=True)
class Rendered:
    data: bytes
    media_type: str


def load_bytes(image: Image, session: Session | None = None) -> bytes:
    """Verified bytes: from the blob store when the catalog holds a copy, from the original
    location otherwise; 409 ``image_changed`` when they no longer hash to the image's sha256
    (with a session, the location is recorded as stale in it)."""
    from dataops.catalog.verify import read_verified

    return read_verified(image, session)


class _RenderCache:
    """Least recently used renderings by (sha256, size), bounded in bytes, shared by threads."""

    def __init__(self, budget: int, largest: int) -> None:
        self.budget, self.largest, self.used = budget, largest, 0
        self.items: OrderedDict[tuple[str, int], Rendered] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> Rendered | None:
        with self.lock:
            found = self.items.get(key)
            if found is not None:
                self.items.move_to_end(key)
            return found

    def put(self, key: tuple[str, int], rendered: Rendered) -> None:
        size = len(rendered.data)
        if size > self.largest:
            return
        with self.lock:
            if key in self.items:
                return
            self.items[key] = rendered
            self.used += size
            while self.used > self.budget:
                _, dropped = self.items.popitem(last=False)
                self.used -= len(dropped.data)


_cache = _RenderCache(budget=64 * 2**20, largest=8 * 2**20)
FULL_SIZE = 0


def render(session: Session, image: Image, size: int | None, *, max_pixels: int) -> Rendered:
    """The image (``size`` None) or its thumbnail, from verified bytes; cached by sha256."""
    data = load_bytes(image, session)
    key = (image.sha256, size or FULL_SIZE)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    if size is None:
        rendered = clean_image(data, max_pixels=max_pixels)
    else:
        rendered = thumbnail(data, size, max_pixels=max_pixels)
    _cache.put(key, rendered)
    return rendered


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
