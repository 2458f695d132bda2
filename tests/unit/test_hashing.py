from __future__ import annotations

from pathlib import Path

import imagehash
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from dataops.catalog.hashing import (
    compute_hashes,
    from_signed64,
    hamming,
    lanczos_thumbnails,
    to_codes,
    to_signed64,
)


def _files(corpus: Path) -> list[Path]:
    return (
        sorted((corpus / "kodak-photocd").glob("*.png"))[:4]
        + sorted((corpus / "clothing-dataset").glob("*.jpg"))[:6]
    )


def test_matches_imagehash_bit_for_bit(corpus: Path) -> None:
    for path in _files(corpus):
        with Image.open(path) as img:
            hashes = compute_hashes(img)
            assert hashes.phash == int(str(imagehash.phash(img)), 16), path
            assert hashes.dhash == int(str(imagehash.dhash(img)), 16), path
            assert hashes.phash_flip == int(str(imagehash.phash(ImageOps.mirror(img))), 16), path


def test_sixteen_bit_and_alpha_images_hash_like_their_8bit_view() -> None:
    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (64, 1))
    img16 = Image.fromarray(ramp)
    img8 = Image.fromarray((ramp // 257).astype(np.uint8))
    assert hamming(compute_hashes(img16).phash, compute_hashes(img8).phash) <= 2
    rgba = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    assert compute_hashes(rgba).phash == compute_hashes(Image.new("L", (64, 64), 255)).phash


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_signed_round_trip(value: int) -> None:
    stored = to_signed64(value)
    assert -(2**63) <= stored < 2**63
    assert from_signed64(stored) == value


@given(st.lists(st.integers(min_value=0, max_value=2**64 - 1), min_size=1, max_size=20))
def test_codes_are_big_endian_bytes(values: list[int]) -> None:
    codes = to_codes(values)
    assert codes.shape == (len(values), 8)
    for row, value in zip(codes, values, strict=True):
        assert int.from_bytes(bytes(row), "big") == value
    signed = np.array([to_signed64(v) for v in values], dtype=np.int64)
    assert np.array_equal(to_codes(signed), codes)


@pytest.mark.parametrize(("a", "b", "d"), [(0, 0, 0), (0, 1, 1), (0, 2**64 - 1, 64), (5, 6, 2)])
def test_hamming(a: int, b: int, d: int) -> None:
    assert hamming(a, b) == d


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=900),
    st.integers(min_value=1, max_value=900),
    st.integers(min_value=1, max_value=64),
    st.integers(min_value=1, max_value=64),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_lanczos_thumbnails_equal_pillow_resize(
    width: int, height: int, out_w: int, out_h: int, seed: int
) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    img = Image.fromarray(pixels)
    sizes = ((32, 32), (9, 8), (out_w, out_h))
    for size, thumb in zip(
        sizes, lanczos_thumbnails(pixels.astype(np.float64), sizes), strict=True
    ):
        expected = np.asarray(img.resize(size, Image.Resampling.LANCZOS))
        assert np.array_equal(thumb, expected), (width, height, size)
