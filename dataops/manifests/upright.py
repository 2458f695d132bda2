"""Upright image bytes for exports: pixels turned as the EXIF orientation says, tag gone.

Training code that ignores EXIF (torchvision's ``ImageFolder`` and ``CocoDetection``, most
loaders) must see the picture that dataops's own loader and the upright COCO sizes describe.
JPEGs are turned losslessly with ``jpegtran -perfect`` (Debian ``libjpeg-turbo-progs``) when
it is installed and the image's size allows it; otherwise the image is decoded, turned and
encoded again (JPEG at quality 95 without chroma subsampling), which loses a little.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from typing import Literal, NamedTuple

from PIL import Image, ImageOps, UnidentifiedImageError

ORIENTATION_TAG = 0x0112
_JPEGTRAN_OPS = {
    2: ["-flip", "horizontal"],
    3: ["-rotate", "180"],
    4: ["-flip", "vertical"],
    5: ["-transpose"],
    6: ["-rotate", "90"],
    7: ["-transverse"],
    8: ["-rotate", "270"],
}
_JPEG_QUALITY = 95

Method = Literal["jpegtran", "re-encoded"]


class Upright(NamedTuple):
    data: bytes
    method: Method


def orientation(data: bytes) -> tuple[int, str | None]:
    """The EXIF orientation (1 when absent or unreadable) and the PIL format name."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            value = img.getexif().get(ORIENTATION_TAG, 1)
            return (value if isinstance(value, int) else 1), img.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return 1, None


def _jpegtran(data: bytes, value: int) -> bytes | None:
    tool = shutil.which("jpegtran")
    if tool is None:
        return None
    # -copy icc keeps the colour profile and drops the EXIF block, orientation tag included.
    cmd = [tool, "-perfect", "-copy", "icc", *_JPEGTRAN_OPS[value]]
    proc = subprocess.run(cmd, input=data, capture_output=True, check=False, timeout=120)
    return proc.stdout if proc.returncode == 0 and proc.stdout else None


def _reencode(data: bytes, fmt: str) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        icc = img.info.get("icc_profile")
        turned = ImageOps.exif_transpose(img)
        out = io.BytesIO()
        options: dict[str, object] = {"icc_profile": icc} if icc else {}
        if fmt == "JPEG":
            options.update(quality=_JPEG_QUALITY, subsampling=0)
        turned.save(out, format=fmt, **options)
        return out.getvalue()


def upright(data: bytes) -> Upright | None:
    """Bytes with upright pixels and no orientation tag, or None when nothing needs turning."""
    value, fmt = orientation(data)
    if value not in _JPEGTRAN_OPS or fmt is None:
        return None
    if fmt == "JPEG":
        lossless = _jpegtran(data, value)
        if lossless is not None:
            return Upright(lossless, "jpegtran")
    return Upright(_reencode(data, fmt), "re-encoded")
