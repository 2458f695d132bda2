"""Every kind of bad or unusual image is quarantined with a reason or handled: never a crash."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from dataops.catalog.hashing import compute_hashes, from_signed64, hamming
from dataops.catalog.validate import inspect_bytes

LIMIT = 100_000_000
ALLOW = frozenset({"Make", "Model", "DateTime", "DateTimeOriginal", "Orientation"})


def inspect(data: bytes):  # type: ignore[no-untyped-def]
    return inspect_bytes("mem://x", data, max_pixels=LIMIT, exif_allowlist=ALLOW)


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


def _photo() -> Image.Image:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (6, 12, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((120, 60), Image.Resampling.BICUBIC)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("zero-byte", b"", "empty file"),
        (
            "html saved as .jpg",
            b"<!doctype html><html><body>hi</body></html>",
            "not a decodable image",
        ),
        ("truncated jpeg", _encode(_photo(), "JPEG")[:300], "decode failed"),
        ("60k x 60k header", _png_header_only(60_000, 60_000), "decompression bomb"),
        ("text", b"just some text\n" * 10, "not a decodable image"),
    ],
)
def test_quarantined_with_reason(name: str, data: bytes, reason: str) -> None:
    result = inspect(data)
    assert result.status == "quarantined", name
    assert result.reason is not None and reason in result.reason, (name, result.reason)
    assert result.sha256 is not None and len(result.sha256) == 64


def test_bomb_limit_is_configurable() -> None:
    data = _encode(Image.new("L", (200, 200)), "PNG")
    assert inspect_bytes("m", data, max_pixels=39_999, exif_allowlist=ALLOW).status == "quarantined"
    assert inspect_bytes("m", data, max_pixels=40_000, exif_allowlist=ALLOW).status == "ok"


@pytest.mark.parametrize(
    ("name", "data", "mode"),
    [
        ("1x1", _encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"), "RGB"),
        ("cmyk jpeg", _encode(_photo().convert("CMYK"), "JPEG"), "CMYK"),
        (
            "16-bit png",
            _encode(Image.fromarray(np.arange(4096, dtype=np.uint16).reshape(64, 64) * 16), "PNG"),
            "I;16",
        ),
        ("palette + transparency", _encode(_photo().convert("P"), "PNG", transparency=0), "P"),
        ("grayscale", _encode(_photo().convert("L"), "JPEG"), "L"),
        ("png named .jpg", _encode(_photo(), "PNG"), "RGB"),
        (
            "animated gif",
            _encode(
                _photo().convert("P"),
                "GIF",
                save_all=True,
                append_images=[_photo().rotate(90).convert("P")],
            ),
            "P",
        ),
    ],
)
def test_handled(name: str, data: bytes, mode: str) -> None:
    result = inspect(data)
    assert result.status == "ok", (name, result.reason)
    assert result.mode == mode
    assert result.phash is not None and result.dhash is not None
    assert result.width and result.height


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation: int) -> None:
    upright = _photo()
    # Store the pixels so that applying the EXIF orientation gives the upright photo back.
    inverse = {
        1: upright,
        2: upright.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        3: upright.transpose(Image.Transpose.ROTATE_180),
        4: upright.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
        5: upright.transpose(Image.Transpose.TRANSPOSE),
        6: upright.transpose(Image.Transpose.ROTATE_90),
        7: upright.transpose(Image.Transpose.TRANSVERSE),
        8: upright.transpose(Image.Transpose.ROTATE_270),
    }[orientation]
    exif = Image.Exif()
    exif[274] = orientation
    result = inspect(_encode(inverse, "JPEG", quality=95, exif=exif.tobytes()))
    assert result.status == "ok"
    assert (result.width, result.height) == upright.size
    expected = compute_hashes(upright).phash
    assert result.phash is not None
    assert hamming(from_signed64(result.phash), expected) <= 6


def test_corpus_edge_cases(corpus: Path) -> None:
    folder = corpus / "cameratrapai-testdata"
    results = {p.name: inspect(p.read_bytes()) for p in sorted(folder.iterdir())}
    bad = {name for name, r in results.items() if r.status != "ok"}
    assert bad == {"african_elephants_truncated_file.jpg"}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes_never_crash(data: bytes) -> None:
    result = inspect(data)
    assert result.status in ("ok", "quarantined")


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=2000), st.binary(min_size=0, max_size=64))
def test_fuzz_corrupted_jpeg_never_crash(cut: int, noise: bytes) -> None:
    data = bytearray(_encode(_photo(), "JPEG"))
    data[cut % len(data) : cut % len(data) + len(noise)] = noise
    result = inspect(bytes(data))
    assert result.status in ("ok", "quarantined")
