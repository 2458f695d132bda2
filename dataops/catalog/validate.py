"""Decode check, metadata and hashes for one file, in one pass; runs in worker processes.

JPEGs are decoded in draft mode (libjpeg scales by 1/2..1/8 while decoding) because hashing
only needs a 32x32 thumbnail: ~4x faster on 400x533 photos. Draft decoding still reads every
scan, so truncation is detected, but it shifts pHash values by about one bit on average
(96 % within 2 bits) compared with a full decode — well inside any dedup radius.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from dataops.catalog.hashing import compute_hashes, to_signed64
from dataops.storage import BlobStore, RefusedLocation, read_uri

SUPPORTED_FORMATS = {"JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "MPO"}
_EXIF_IFD = 0x8769
_TAG_IDS = {name: tag for tag, name in ExifTags.TAGS.items()}
_ORIENTATION = 274
_SWAPPED_ORIENTATIONS = {5, 6, 7, 8}


@dataclass(slots=True)
class Inspection:
    uri: str
    sha256: str | None = None
    bytes: int = 0
    status: str = "ok"
    reason: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    mode: str | None = None
    captured_at: datetime | None = None
    camera: str | None = None
    phash: int | None = None
    dhash: int | None = None
    phash_flip: int | None = None
    blob_key: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _allowed_exif(img: Image.Image, allowlist: frozenset[str]) -> dict[str, Any]:
    """Read only allowlisted tags; GPS, serials, owner names and maker notes are never touched."""
    exif = img.getexif()
    out: dict[str, Any] = {}
    for name in allowlist:
        tag = _TAG_IDS.get(name)
        if tag is None:
            continue
        value = exif.get(tag)
        if value is None and name.startswith("DateTime"):
            value = exif.get_ifd(_EXIF_IFD).get(tag)
        if value is not None:
            out[name] = value
    return out


def _parse_exif_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def _clean(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "").strip()
    return text[:64] or None


def inspect_bytes(
    uri: str, data: bytes, *, max_pixels: int, exif_allowlist: frozenset[str]
) -> Inspection:
    result = Inspection(uri=uri, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))

    def quarantine(reason: str) -> Inspection:
        result.status, result.reason = "quarantined", reason
        return result

    if not data:
        return quarantine("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
        fmt = img.format or "unknown"
        result.format, result.mode = fmt, img.mode
        if fmt not in SUPPORTED_FORMATS:
            return quarantine(f"unsupported format {fmt}")
        width, height = img.size
        if width * height > max_pixels:
            return quarantine(
                f"decompression bomb: {width}x{height} = {width * height} pixels exceeds "
                f"the limit of {max_pixels} (DATAOPS_INGEST__MAX_PIXELS)"
            )
        exif = _allowed_exif(img, exif_allowlist)
        if exif.get("Orientation") in _SWAPPED_ORIENTATIONS:
            width, height = height, width
        result.width, result.height = width, height
        result.captured_at = _parse_exif_time(exif.get("DateTimeOriginal") or exif.get("DateTime"))
        camera = " ".join(p for p in (_clean(exif.get("Make")), _clean(exif.get("Model"))) if p)
        result.camera = camera or None
        if fmt == "JPEG" and img.mode in ("RGB", "L", "YCbCr"):
            img.draft("L", (64, 64))
        img.load()
        oriented: Image.Image = img
        if exif.get("Orientation", 1) != 1:
            oriented = ImageOps.exif_transpose(img)
        hashes = compute_hashes(oriented)
    except Image.DecompressionBombError as exc:
        return quarantine(f"decompression bomb: {exc}")
    except UnidentifiedImageError:
        return quarantine("not a decodable image (unrecognised content)")
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        return quarantine(f"decode failed: {exc}")
    except MemoryError:
        return quarantine("decode failed: out of memory")
    result.phash = to_signed64(hashes.phash)
    result.dhash = to_signed64(hashes.dhash)
    result.phash_flip = to_signed64(hashes.phash_flip)
    return result


@dataclass(frozen=True, slots=True)
class InspectOptions:
    max_pixels: int
    exif_allowlist: frozenset[str]
    copy_to: str | None = None
    # Set for ingests requested over HTTP: every file is re-checked against them as it is read.
    roots: tuple[str, ...] | None = None


UNCHANGED, REFUSED, UNREADABLE = "unchanged", "refused", "unreadable"


def inspect_uri(
    uri: str, known_sha256: str | None = None, *, options: InspectOptions
) -> Inspection:
    """Read, validate and hash one location; a file we cannot or may not read comes back
    without a sha256. A known location whose bytes still hash to ``known_sha256`` comes back
    ``unchanged`` without being decoded (its size or time stamps prove nothing)."""
    Image.MAX_IMAGE_PIXELS = None  # we enforce our own, configurable limit before decoding
    try:
        data = read_uri(uri, options.roots)
    except RefusedLocation as exc:
        return Inspection(uri=uri, status=REFUSED, reason=f"refused: {exc}")
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return Inspection(uri=uri, status=UNREADABLE, reason=f"cannot read: {reason}")
    if known_sha256 is not None:
        sha256 = hashlib.sha256(data).hexdigest()
        if sha256 == known_sha256:
            return Inspection(uri=uri, sha256=sha256, bytes=len(data), status=UNCHANGED)
    result = inspect_bytes(
        uri, data, max_pixels=options.max_pixels, exif_allowlist=options.exif_allowlist
    )
    if options.copy_to and result.sha256:
        result.blob_key = BlobStore(options.copy_to).put(data, result.sha256)
    return result
