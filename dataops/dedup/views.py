"""Extra hash views of an image: its content inside borders and its centre crops.

A crop of a photo and the photo itself disagree on the frame, so their full-image pHashes
drift apart (10 % off one side is ~15 bits). Hashing a few fixed views of each image and
matching every view against the full-image codes of the others lines the frames up again:
an image cropped by about 10 % per side has a full hash close to the original's 80 % centre
crop view, and a letterboxed copy's trimmed view is close to the original's full hash.
Views are matched with the same pHash radius and dHash confirmation as full images, and
only against full images (never view against view), which keeps the candidate rate low.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from dataops.catalog.hashing import Hashes, compute_hashes, to_gray
from dataops.dedup.borders import find_borders
from dataops.dedup.grouping import DedupParams, ImageHashes
from dataops.dedup.index import HashIndex, Pairs

WORK_SIDE = 512
"""Longest side views are cut from: enough for a 32x32 DCT, cheap to decode (JPEG draft)."""
CENTRE_CROPS: tuple[float, ...] = (0.9, 0.8)
"""Kept share of width and height for each centre-crop view of the trimmed image."""
CORNER_CROPS: tuple[float, ...] = (0.9,)
"""Kept share of width and height for each corner-anchored view (top-left, top-right,
bottom-left, bottom-right): an off-centre crop keeps one corner of the original."""
CORNERS = ("tl", "tr", "bl", "br")
VIEW_NAMES: tuple[str, ...] = (
    "trimmed",
    *(f"centre{round(c * 100)}" for c in CENTRE_CROPS),
    *(f"{corner}{round(c * 100)}" for c in CORNER_CROPS for corner in CORNERS),
)


@dataclass(frozen=True, slots=True)
class Views:
    """One image's view hashes, in :data:`VIEW_NAMES` order; a view equal to the full
    image (no border found) is left out as ``None``."""

    hashes: tuple[Hashes | None, ...]

    def codes(self) -> list[tuple[int, Hashes]]:
        """(view number, hashes) of the views that exist."""
        return [(k, h) for k, h in enumerate(self.hashes) if h is not None]


def working_gray(img: Image.Image) -> np.ndarray:
    """8-bit grayscale, upright, at most :data:`WORK_SIDE` on its longest side."""
    if img.format == "JPEG":
        img.draft("L", (WORK_SIDE, WORK_SIDE))
    img = ImageOps.exif_transpose(img)
    gray = to_gray(img)
    if max(gray.size) > WORK_SIDE:
        gray = gray.copy()
        gray.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(gray, dtype=np.uint8)


def _centre(gray: np.ndarray, keep: float) -> np.ndarray:
    height, width = gray.shape
    dy = round(height * (1.0 - keep) / 2)
    dx = round(width * (1.0 - keep) / 2)
    return gray[dy : height - dy, dx : width - dx]


def _corner(gray: np.ndarray, keep: float, corner: str) -> np.ndarray:
    height, width = gray.shape
    h, w = round(height * keep), round(width * keep)
    top = 0 if corner[0] == "t" else height - h
    left = 0 if corner[1] == "l" else width - w
    return gray[top : top + h, left : left + w]


def view_hashes(gray: np.ndarray) -> Views:
    """The view hashes of an 8-bit grayscale array (see :func:`working_gray`)."""
    box = find_borders(gray)
    inner = gray[box.top : box.bottom, box.left : box.right]
    trimmed = box.trimmed(gray.shape[1], gray.shape[0])
    out: list[Hashes | None] = [_hash(inner) if trimmed else None]
    out += [_hash(_centre(inner, keep)) for keep in CENTRE_CROPS]
    out += [_hash(_corner(inner, keep, c)) for keep in CORNER_CROPS for c in CORNERS]
    return Views(tuple(out))


def _hash(gray: np.ndarray) -> Hashes:
    return compute_hashes(Image.fromarray(np.ascontiguousarray(gray), mode="L"))


def image_views(img: Image.Image) -> Views:
    """The view hashes of a decoded image."""
    return view_hashes(working_gray(img))


@dataclass(frozen=True, slots=True)
class ViewTable:
    """View codes of many images, one row per (image, view): what the view search queries."""

    ids: np.ndarray
    view: np.ndarray
    phash: np.ndarray
    dhash: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @classmethod
    def from_views(cls, ids: Sequence[int] | np.ndarray, views: Sequence[Views]) -> ViewTable:
        """Flatten per-image views into rows."""
        rows = [(int(i), k, h) for i, v in zip(ids, views, strict=True) for k, h in v.codes()]
        return cls(
            ids=np.array([r[0] for r in rows], dtype=np.int64),
            view=np.array([r[1] for r in rows], dtype=np.int8),
            phash=np.array([r[2].phash for r in rows], dtype=np.uint64),
            dhash=np.array([r[2].dhash for r in rows], dtype=np.uint64),
        )


def _unique(pairs: Pairs) -> Pairs:
    """One row per image pair (i < j), the closest view's distance."""
    if len(pairs) == 0:
        return Pairs.empty()
    lo = np.minimum(pairs.i, pairs.j)
    hi = np.maximum(pairs.i, pairs.j)
    order = np.lexsort((pairs.dist, hi, lo))
    lo, hi, dist = lo[order], hi[order], pairs.dist[order]
    first = np.ones(lo.shape[0], bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return Pairs(lo[first], hi[first], dist[first])


@dataclass(frozen=True, slots=True)
class ViewHits:
    """What a view search found: confirmed pairs, and the hits confirmation turned down
    (the geometric stage's candidates). Both one row per image pair, i < j."""

    confirmed: Pairs
    rejected: Pairs


def _split(hashes: ImageHashes, views: ViewTable, hits: Pairs, params: DedupParams) -> ViewHits:
    assert hashes.dhash is not None
    rows, full_ids = hits.i, hits.j
    keep = views.ids[rows] != full_ids
    rows, full_ids, p = rows[keep], full_ids[keep], hits.dist[keep].astype(np.int32)
    d = np.bitwise_count(views.dhash[rows] ^ hashes.dhash[hashes.positions(full_ids)])
    ok = np.ones(rows.shape[0], bool)
    if params.dhash_radius is not None:
        ok &= d <= params.dhash_radius
    if params.joint_radius is not None:
        ok &= p + d <= params.joint_radius
    confirmed = _unique(Pairs(views.ids[rows[ok]], full_ids[ok], p[ok]))
    rejected = _unique(Pairs(views.ids[rows[~ok]], full_ids[~ok], p[~ok]))
    return ViewHits(confirmed, drop_pairs(rejected, confirmed))


def drop_pairs(pairs: Pairs, known: Pairs) -> Pairs:
    """``pairs`` (i < j) without those in ``known`` (i < j)."""
    if len(pairs) == 0 or len(known) == 0:
        return pairs
    key = pairs.i * (1 << 32) + pairs.j
    seen = np.isin(key, known.i * (1 << 32) + known.j)
    return Pairs(pairs.i[~seen], pairs.j[~seen], pairs.dist[~seen])


def view_pairs(
    index: HashIndex, hashes: ImageHashes, views: ViewTable, params: DedupParams
) -> ViewHits:
    """Pairs where a view of one image is the full image of another, confirmed as
    :func:`~dataops.dedup.grouping.match` confirms full images (pHash radius, pHash+dHash);
    ``params.radius`` is the view radius."""
    if len(views) == 0 or len(index) == 0:
        return ViewHits(Pairs.empty(), Pairs.empty())
    hits = index.query(views.phash, params.radius, ids=np.arange(len(views)))
    return _split(hashes, views, hits, params)


def new_view_pairs(
    index: HashIndex,
    hashes: ImageHashes,
    views: ViewTable,
    new_ids: np.ndarray | Sequence[int],
    params: DedupParams,
) -> ViewHits:
    """The :func:`view_pairs` that involve ``new_ids``; ``index`` holds every full image
    (old and new), ``views`` every image's views.

    New views against all full images, then the old views against the new full images: with
    the pairs found before, the union equals :func:`view_pairs` over everything.
    """
    new = np.asarray(new_ids, dtype=np.int64)
    is_new = np.isin(views.ids, new)
    new_rows = np.flatnonzero(is_new)
    old_rows = np.flatnonzero(~is_new)
    parts: list[Pairs] = []
    if new_rows.shape[0] and len(index):
        parts.append(index.query(views.phash[new_rows], params.radius, ids=new_rows))
    if old_rows.shape[0] and new.shape[0]:
        new_index = HashIndex.build(new, hashes.phash[hashes.positions(new)], gpu=False)
        parts.append(new_index.query(views.phash[old_rows], params.radius, ids=old_rows))
    return _split(hashes, views, Pairs.concat(parts), params)
