"""Perceptual hashes computed in the same decode pass as validation.

The pHash and dHash match ``imagehash.phash``/``imagehash.dhash`` bit for bit on the same
pixels; we compute them from one grayscale array so the mirrored-image hash (flip-robust
dedup) costs one extra DCT instead of a second decode.

The LANCZOS thumbnails are Pillow's 8-bit fixed-point resampling (same weights, same rounding,
same pass order) written as matrix products with the weight matrices cached per size: Pillow
recomputes thousands of sinc weights on every call, which made the two resizes the costliest
step of hashing a small JPEG. Being our own code, the hashes also stay put across Pillow
upgrades; ``tests/unit/test_hashing.py`` checks them against Pillow and imagehash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

Floats = NDArray[np.float64]

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


def _bits_to_int(bits: NDArray[np.bool_]) -> int:
    return int.from_bytes(np.packbits(bits.ravel()).tobytes(), "big")


def _dct_rows(n: int, keep: int) -> Floats:
    """The first `keep` rows of scipy's unnormalised DCT-II matrix, so dct(dct(x).T).T == D x D^T."""
    k = np.arange(keep)[:, None]
    i = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


_DCT = _dct_rows(_PHASH_SIZE, _HASH_SIZE)
_DCT_MIRRORED = _DCT[:, ::-1]


def _above_median(low: Floats) -> int:
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
    gray = img if img.mode == "L" else to_gray(img)
    small, diff_img = lanczos_thumbnails(
        np.asarray(gray, dtype=np.float64),
        ((_PHASH_SIZE, _PHASH_SIZE), (_HASH_SIZE + 1, _HASH_SIZE)),
    )
    rows = _DCT @ small
    return Hashes(
        phash=_above_median(rows @ _DCT.T),
        dhash=_bits_to_int(diff_img[:, 1:] > diff_img[:, :-1]),
        phash_flip=_above_median(rows @ _DCT_MIRRORED.T),
    )


# Pillow's 8-bit resampling (libImaging/Resample.c) uses 22-bit fixed-point weights.
_PRECISION_BITS = 22
_LANCZOS_SUPPORT = 3.0


def _sinc(x: Floats) -> Floats:
    """sin(pi x) / (pi x) with libm's sin (numpy's SIMD sin may differ in the last bit)."""
    x = x * math.pi
    sin = np.fromiter(map(math.sin, x.ravel().tolist()), dtype=np.float64, count=x.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(x == 0.0, 1.0, sin.reshape(x.shape) / x)


@lru_cache(maxsize=128)  # a few hundred KB each at most; photo sets repeat a few sizes
def _lanczos_weights(in_size: int, out_size: int) -> Floats:
    """Pillow's fixed-point LANCZOS weights as an (out, in) matrix, divided by 2**22.

    Every float operation is Pillow's, in its order (elementwise IEEE arithmetic is the same
    in numpy), so every weight is the same integer; dividing by a power of two is exact, and
    so are the products and sums with 8-bit pixels (< 2**53).
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = _LANCZOS_SUPPORT * filterscale
    ksize = math.ceil(support) * 2 + 1
    center = (np.arange(out_size) + 0.5) * scale
    xmin = np.maximum((center - support + 0.5).astype(np.int64), 0)  # C casts truncate
    xmax = np.minimum((center + support + 0.5).astype(np.int64), in_size) - xmin
    taps = np.arange(ksize)
    valid = taps[None, :] < xmax[:, None]
    x = ((taps[None, :] + xmin[:, None]) - center[:, None] + 0.5) * (1.0 / filterscale)
    inside = valid & (x >= -_LANCZOS_SUPPORT) & (x < _LANCZOS_SUPPORT)
    w = np.where(inside, _sinc(x) * _sinc(x / 3), 0.0)
    total = np.cumsum(w, axis=1)[:, -1]  # a running sum, in order, as in C
    k = np.where(total[:, None] != 0.0, w / np.where(total == 0.0, 1.0, total)[:, None], w)
    one = float(1 << _PRECISION_BITS)
    fixed = np.trunc(np.where(k < 0, k * one - 0.5, k * one + 0.5))
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    rows, cols = np.nonzero(valid)
    weights[rows, xmin[rows] + cols] = fixed[rows, cols] / one
    weights.flags.writeable = False
    return weights


@lru_cache(maxsize=64)
def _stacked_weights(in_size: int, out_sizes: tuple[int, ...]) -> Floats:
    stacked = np.ascontiguousarray(np.vstack([_lanczos_weights(in_size, n) for n in out_sizes]).T)
    stacked.flags.writeable = False
    return stacked


# OpenBLAS hands bigger products to its thread pool, whose threads spin while they wait: on a
# busy machine (and in every pool worker) that burns ~10x the CPU of the product itself.
_SINGLE_THREAD_MNK = 1 << 18


def _matmul(a: Floats, b: Floats) -> Floats:
    """``a @ b`` in row blocks small enough for BLAS to compute on the calling thread."""
    m, k = a.shape
    rows = max(1, _SINGLE_THREAD_MNK // (k * b.shape[1]))
    if rows >= m:
        return a @ b
    out = np.empty((m, b.shape[1]), dtype=np.float64)
    for start in range(0, m, rows):
        np.matmul(a[start : start + rows], b, out=out[start : start + rows])
    return out


def _to_8bit(acc: Floats) -> Floats:
    """Pillow's rounding of a weighted sum to a pixel: floor(sum + 1/2), clipped to 0..255."""
    acc += 0.5
    np.floor(acc, out=acc)
    np.maximum(acc, 0.0, out=acc)
    return np.minimum(acc, 255.0, out=acc)


def _vertical_first(in_width: int, in_height: int, width: int, height: int) -> bool:
    """Pillow's pass order: vertical first when the height shrinks twice as much as the width."""
    return in_height - height > 0 and in_height - height > (in_width - width) * 2


def resize_lanczos(pixels: Floats, width: int, height: int) -> Floats:
    """``Image.resize((width, height), LANCZOS)`` of an 8-bit grayscale array, as float64."""
    in_height, in_width = pixels.shape
    out = pixels
    vertical_first = _vertical_first(in_width, in_height, width, height)
    if vertical_first:
        out = _to_8bit(_matmul(_lanczos_weights(in_height, height), out))
    if width != in_width:
        out = _to_8bit(_matmul(out, _lanczos_weights(in_width, width).T))
    if not vertical_first and height != in_height:
        out = _to_8bit(_matmul(_lanczos_weights(in_height, height), out))
    return out


def lanczos_thumbnails(pixels: Floats, sizes: tuple[tuple[int, int], ...]) -> list[Floats]:
    """:func:`resize_lanczos` to several sizes; thumbnails that start with the horizontal pass
    share one matrix product."""
    in_height, in_width = pixels.shape
    shared = [
        (w, h) for w, h in sizes if w != in_width and not _vertical_first(in_width, in_height, w, h)
    ]
    done: dict[tuple[int, int], Floats] = {}
    if len(shared) > 1:
        wide = _to_8bit(_matmul(pixels, _stacked_weights(in_width, tuple(w for w, _ in shared))))
        start = 0
        for w, h in shared:
            part = wide[:, start : start + w]
            start += w
            done[w, h] = (
                part if h == in_height else _to_8bit(_matmul(_lanczos_weights(in_height, h), part))
            )
    return [done[size] if size in done else resize_lanczos(pixels, *size) for size in sizes]


def to_signed64(value: int) -> int:
    """Store an unsigned 64-bit hash in a signed BIGINT column."""
    return value - _UINT64_RANGE if value >= _UINT64_SIGN else value


def from_signed64(value: int) -> int:
    """Inverse of :func:`to_signed64`."""
    return value + _UINT64_RANGE if value < 0 else value


def to_codes(values: list[int] | NDArray[Any]) -> NDArray[np.uint8]:
    """64-bit hashes (unsigned, or signed as stored) as an (n, 8) uint8 array for FAISS."""
    if isinstance(values, np.ndarray):
        arr = values.astype(np.uint64)
    else:
        arr = np.array([int(v) & (_UINT64_RANGE - 1) for v in values], dtype=np.uint64)
    return arr.astype(">u8").view(np.uint8).reshape(-1, 8)


def hamming(a: int, b: int) -> int:
    """Bit distance between two 64-bit hashes."""
    return (a ^ b).bit_count()
