"""Perceptual hashes computed in the same decode pass as validation.

The pHash matches ``imagehash.phash`` bit for bit on the same pixels; we compute it from one
32x32 grayscale thumbnail so the mirrored-image hash (flip-robust dedup) costs one extra DCT
instead of a second decode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

_HASH_SIZE = 8
_PHASH_SIZE = _HASH_SIZE * 4
_UINT64_SIGN = 1 << 63
_UINT64_RANGE = 1 << 64


@dataclass(frozen=True, slots=True)
class Hashes:
    """64-bit perceptual hashes as unsigned ints (bit 63 = first coefficient)."""

    phash: int
    dhash: int
    phash_flip: int


def _bits_to_int(bits: np.ndarray) -> int:
    return int.from_bytes(np.packbits(bits.ravel()).tobytes(), "big")


def _dct_rows(n: int, keep: int) -> np.ndarray:
    """The first `keep` rows of scipy's unnormalised DCT-II matrix, so dct(dct(x).T).T == D x D^T."""
    k = np.arange(keep)[:, None]
    i = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


_DCT = _dct_rows(_PHASH_SIZE, _HASH_SIZE)
_DCT_MIRRORED = _DCT[:, ::-1]


def _above_median(low: np.ndarray) -> int:
    ordered = np.sort(low, axis=None)
    median = (ordered[31] + ordered[32]) / 2.0
    return _bits_to_int(low > median)


def to_gray(img: Image.Image) -> Image.Image:
    """8-bit grayscale for any PIL mode, including 16/32-bit integer and float images."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("L")
    return img.convert("L")


def compute_hashes(img: Image.Image) -> Hashes:
    """pHash, dHash and the pHash of the horizontally mirrored image.

    Only the 8x8 low-frequency block of the 32x32 DCT is needed, so it is two small matrix
    products; mirroring the image is mirroring the DCT basis, so the flip hash is nearly free.
    """
    gray = to_gray(img)
    small = np.asarray(
        gray.resize((_PHASH_SIZE, _PHASH_SIZE), Image.Resampling.LANCZOS), dtype=np.float64
    )
    diff_img = np.asarray(
        gray.resize((_HASH_SIZE + 1, _HASH_SIZE), Image.Resampling.LANCZOS), dtype=np.int16
    )
    rows = _DCT @ small
    return Hashes(
        phash=_above_median(rows @ _DCT.T),
        dhash=_bits_to_int(diff_img[:, 1:] > diff_img[:, :-1]),
        phash_flip=_above_median(rows @ _DCT_MIRRORED.T),
    )


def to_signed64(value: int) -> int:
    """Store an unsigned 64-bit hash in a signed BIGINT column."""
    return value - _UINT64_RANGE if value >= _UINT64_SIGN else value


def from_signed64(value: int) -> int:
    """Inverse of :func:`to_signed64`."""
    return value + _UINT64_RANGE if value < 0 else value


def to_codes(values: list[int] | np.ndarray) -> np.ndarray:
    """64-bit hashes (unsigned, or signed as stored) as an (n, 8) uint8 array for FAISS."""
    if isinstance(values, np.ndarray):
        arr = values.astype(np.uint64)
    else:
        arr = np.array([int(v) & (_UINT64_RANGE - 1) for v in values], dtype=np.uint64)
    return arr.astype(">u8").view(np.uint8).reshape(-1, 8)


def hamming(a: int, b: int) -> int:
    """Bit distance between two 64-bit hashes."""
    return (a ^ b).bit_count()
