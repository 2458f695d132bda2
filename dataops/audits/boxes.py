"""Agreement between annotators on detection boxes.

Boxes are relative ``(x, y, w, h)``: top-left corner, width and height as fractions of the
image size (Label Studio's convention divided by 100). Two annotators are compared on the
images both labeled (an image labeled with no boxes counts: it says "nothing here").

Matching, per image and class: the Hungarian algorithm (``linear_sum_assignment``) on
``1 - IoU``, where pairs below the IoU threshold are forbidden. Forbidden pairs cost more
than any set of allowed ones, so the matching first maximises the number of matches and then
their total IoU; a greedy "best IoU first" matching can lose matches (see the tests).

Krippendorff's alpha with distance ``1 - IoU``, unitized by the matching: each matched pair
is a unit with two values at distance ``1 - IoU``; each unmatched box is a unit whose other
value is empty, at distance 1. Boxes on different images or of different classes are at
distance 1 (they cannot be the same object), and so is an empty value from anything else
(it stands for a missed object of its own). Then
``alpha = 1 - D_o / D_e`` with ``D_o`` the mean within-unit distance and ``D_e`` the mean
distance over all ordered pairs of values, ``1 - S / (n (n - 1))`` where ``S`` sums the IoU
of distinct same-image, same-class boxes. Identical boxes give alpha = 1; any jitter or any
missed box lowers it. With many images ``D_e`` is close to 1, as it should be: boxes do not
agree by chance.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from dataops.audits.ratings import canonical_order, group_pairs

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoxRecord = tuple[Hashable, Hashable, Hashable, float, float, float, float]

IOU_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def iou_matrix(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """IoU of every box in ``a`` (n x 4, xywh) with every box in ``b`` (m x 4)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return paired_iou(a[:, None, :], b[None, :, :])


def paired_iou(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """Element-wise IoU of two broadcastable arrays of xywh boxes (last axis of 4)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    w = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    h = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _check_threshold(iou_threshold: float) -> None:
    if not 0 < iou_threshold <= 1:
        raise ValueError("iou_threshold must be in (0, 1]")


def _assign(iou: FloatArray, iou_threshold: float) -> tuple[IntArray, IntArray]:
    """Hungarian matching of one IoU block: most matches first, then most total IoU."""
    from scipy.optimize import linear_sum_assignment

    allowed = iou >= iou_threshold
    forbidden_cost = min(iou.shape) + 1.0
    cost = np.where(allowed, 1.0 - iou, forbidden_cost)
    rows, cols = linear_sum_assignment(cost)
    keep = allowed[rows, cols]
    return rows[keep], cols[keep]


@dataclass(frozen=True)
class Match:
    """Matched box positions and their IoU."""

    rows: IntArray
    cols: IntArray
    iou: FloatArray


def match_boxes(a: npt.ArrayLike, b: npt.ArrayLike, *, iou_threshold: float = 0.5) -> Match:
    """Match two sets of same-class boxes on one image (see the module docstring)."""
    _check_threshold(iou_threshold)
    iou = iou_matrix(a, b)
    if iou.size == 0:
        empty = np.zeros(0, dtype=np.intp)
        return Match(empty, empty, np.zeros(0))
    rows, cols = _assign(iou, iou_threshold)
    return Match(rows, cols, iou[rows, cols])


@dataclass(frozen=True, eq=False)
class BoxAnnotations:
    """Boxes of several annotators, with which images each annotator labeled."""

    images: tuple[Hashable, ...]
    annotators: tuple[Hashable, ...]
    classes: tuple[Hashable, ...]
    image_idx: IntArray
    annotator_idx: IntArray
    class_idx: IntArray
    xywh: FloatArray
    labeled: npt.NDArray[np.bool_]

    @classmethod
    def from_records(
        cls,
        boxes: Iterable[BoxRecord],
        *,
        labeled: Iterable[tuple[Hashable, Hashable]] | None = None,
    ) -> BoxAnnotations:
        """Build from (image, annotator, class, x, y, w, h) records.

        ``labeled`` lists (image, annotator) pairs that were annotated, so an image with no
        boxes still counts as an answer; without it, only images with boxes count.
        """
        rows = list(boxes)
        done = list(labeled) if labeled is not None else []
        images = canonical_order([*(r[0] for r in rows), *(d[0] for d in done)])
        annotators = canonical_order([*(r[1] for r in rows), *(d[1] for d in done)])
        classes = canonical_order(r[2] for r in rows)
        img_pos = {v: i for i, v in enumerate(images)}
        ann_pos = {v: i for i, v in enumerate(annotators)}
        cls_pos = {v: i for i, v in enumerate(classes)}
        xywh = np.array([r[3:7] for r in rows], dtype=np.float64).reshape(-1, 4)
        bad = ~np.isfinite(xywh).all(axis=1) | (xywh[:, 2] <= 0) | (xywh[:, 3] <= 0)
        if bad.any():
            first = int(np.argmax(bad))
            raise ValueError(f"box {first} {rows[first]!r}: coordinates must be finite, w, h > 0")
        image_idx = np.fromiter((img_pos[r[0]] for r in rows), np.intp, len(rows))
        annotator_idx = np.fromiter((ann_pos[r[1]] for r in rows), np.intp, len(rows))
        class_idx = np.fromiter((cls_pos[r[2]] for r in rows), np.intp, len(rows))
        marks = np.zeros((len(annotators), len(images)), dtype=bool)
        marks[annotator_idx, image_idx] = True
        for image, annotator in done:
            marks[ann_pos[annotator], img_pos[image]] = True
        return cls(images, annotators, classes, image_idx, annotator_idx, class_idx, xywh, marks)

    def annotator_position(self, annotator: Hashable) -> int:
        try:
            return self.annotators.index(annotator)
        except ValueError:
            raise ValueError(f"unknown annotator {annotator!r}") from None


def _iou_summary(iou: FloatArray) -> dict[str, float | None]:
    if iou.size == 0:
        return {"mean": None, **{f"p{round(q * 100)}": None for q in IOU_QUANTILES}}
    qs = np.quantile(iou, IOU_QUANTILES)
    return {
        "mean": float(iou.mean()),
        **{f"p{round(q * 100)}": float(v) for q, v in zip(IOU_QUANTILES, qs, strict=True)},
    }


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


@dataclass(frozen=True)
class PairAgreement:
    """Box agreement of annotator b against annotator a (a plays the reference).

    ``matched_boxes`` holds (box of a, box of b) positions in the BoxAnnotations arrays.
    """

    annotator_a: Hashable
    annotator_b: Hashable
    iou_threshold: float
    n_images: int
    n_boxes_a: int
    n_boxes_b: int
    n_matched: int
    matched_boxes: IntArray
    matched_iou: FloatArray
    alpha: float | None
    per_class: list[dict[str, Any]]
    image_f1: dict[Hashable, float] = field(repr=False)

    @property
    def precision(self) -> float | None:
        return _ratio(self.n_matched, self.n_boxes_b)

    @property
    def recall(self) -> float | None:
        return _ratio(self.n_matched, self.n_boxes_a)

    @property
    def f1(self) -> float | None:
        return _ratio(2 * self.n_matched, self.n_boxes_a + self.n_boxes_b)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (per-image F1 left out; use ``image_f1`` for disputes)."""
        return {
            "annotator_a": self.annotator_a,
            "annotator_b": self.annotator_b,
            "iou_threshold": self.iou_threshold,
            "n_images": self.n_images,
            "n_boxes_a": self.n_boxes_a,
            "n_boxes_b": self.n_boxes_b,
            "n_matched": self.n_matched,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "iou": _iou_summary(self.matched_iou),
            "alpha": self.alpha,
            "per_class": self.per_class,
        }


def pair_agreement(
    boxes: BoxAnnotations,
    annotator_a: Hashable,
    annotator_b: Hashable,
    *,
    iou_threshold: float = 0.5,
) -> PairAgreement:
    """Match two annotators' boxes on the images both labeled and score the matching."""
    _check_threshold(iou_threshold)
    ia, ib = boxes.annotator_position(annotator_a), boxes.annotator_position(annotator_b)
    common = boxes.labeled[ia] & boxes.labeled[ib]
    in_common = common[boxes.image_idx]
    sel_a = np.flatnonzero((boxes.annotator_idx == ia) & in_common)
    sel_b = np.flatnonzero((boxes.annotator_idx == ib) & in_common)
    n_classes = max(len(boxes.classes), 1)
    key_a = boxes.image_idx[sel_a] * n_classes + boxes.class_idx[sel_a]
    key_b = boxes.image_idx[sel_b] * n_classes + boxes.class_idx[sel_b]

    # Candidate pairs: same image and class, IoU computed for all of them at once.
    pa, pb = group_pairs(key_a, key_b)
    iou = paired_iou(boxes.xywh[sel_a[pa]], boxes.xywh[sel_b[pb]])
    matched_a, matched_b, matched_iou = _match_groups(key_a, pa, pb, iou, iou_threshold)

    # Alpha: units are matched pairs plus unmatched boxes (see the module docstring).
    n_a, n_b, n_m = len(sel_a), len(sel_b), len(matched_a)
    units = n_a + n_b - n_m
    alpha: float | None = None
    if units:
        pooled = np.concatenate([sel_a, sel_b])
        key = np.concatenate([key_a, key_b])
        pi, pj = group_pairs(key, key)
        distinct = pi != pj
        same = paired_iou(boxes.xywh[pooled[pi[distinct]]], boxes.xywh[pooled[pj[distinct]]])
        n_values = 2 * units
        d_o = (units - matched_iou.sum()) / units
        d_e = 1 - same.sum() / (n_values * (n_values - 1))
        alpha = float(1 - d_o / d_e) if d_e > 0 else None

    cls_a = boxes.class_idx[sel_a]
    cls_b = boxes.class_idx[sel_b]
    count_a = np.bincount(cls_a, minlength=n_classes)
    count_b = np.bincount(cls_b, minlength=n_classes)
    count_m = np.bincount(cls_a[matched_a], minlength=n_classes)
    iou_sum = np.bincount(cls_a[matched_a], weights=matched_iou, minlength=n_classes)
    per_class = [
        {
            "label": label,
            "n_boxes_a": int(count_a[c]),
            "n_boxes_b": int(count_b[c]),
            "n_matched": int(count_m[c]),
            "f1": _ratio(2 * count_m[c], count_a[c] + count_b[c]),
            "mean_iou": _ratio(iou_sum[c], count_m[c]),
        }
        for c, label in enumerate(boxes.classes)
    ]

    n_images = len(boxes.images)
    img_a = np.bincount(boxes.image_idx[sel_a], minlength=n_images)
    img_b = np.bincount(boxes.image_idx[sel_b], minlength=n_images)
    img_m = np.bincount(boxes.image_idx[sel_a[matched_a]], minlength=n_images)
    image_f1 = {
        boxes.images[i]: (2 * img_m[i] / (img_a[i] + img_b[i]) if img_a[i] + img_b[i] else 1.0)
        for i in np.flatnonzero(common).tolist()
    }
    return PairAgreement(
        annotator_a=annotator_a,
        annotator_b=annotator_b,
        iou_threshold=iou_threshold,
        n_images=int(common.sum()),
        n_boxes_a=n_a,
        n_boxes_b=n_b,
        n_matched=n_m,
        matched_boxes=np.stack([sel_a[matched_a], sel_b[matched_b]], axis=1),
        matched_iou=matched_iou,
        alpha=alpha,
        per_class=per_class,
        image_f1=image_f1,
    )


def _match_groups(
    key_a: IntArray, pa: IntArray, pb: IntArray, iou: FloatArray, iou_threshold: float
) -> tuple[IntArray, IntArray, FloatArray]:
    """Hungarian matching inside each (image, class) group of candidate pairs.

    ``group_pairs`` lists a group's pairs contiguously, row by row, so each group reshapes to
    its IoU block. One-to-one groups (the common case) are decided without the solver.
    """
    if len(pa) == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, np.zeros(0)
    keys = key_a[pa]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    single = sizes == 1
    s = starts[single]
    ok = iou[s] >= iou_threshold
    out_a, out_b, out_iou = [pa[s][ok]], [pb[s][ok]], [iou[s][ok]]
    for start, size in zip(starts[~single].tolist(), sizes[~single].tolist(), strict=True):
        block = slice(start, start + size)
        rows_a, cols_b = np.unique(pa[block]), np.unique(pb[block])
        mat = iou[block].reshape(len(rows_a), len(cols_b))
        r, c = _assign(mat, iou_threshold)
        out_a.append(rows_a[r])
        out_b.append(cols_b[c])
        out_iou.append(mat[r, c])
    return np.concatenate(out_a), np.concatenate(out_b), np.concatenate(out_iou)


def box_agreement(boxes: BoxAnnotations, *, iou_threshold: float = 0.5) -> dict[str, Any]:
    """Every annotator pair's agreement plus the means over pairs."""
    pairs = [
        pair_agreement(boxes, a, b, iou_threshold=iou_threshold)
        for i, a in enumerate(boxes.annotators)
        for b in boxes.annotators[i + 1 :]
    ]
    f1 = [p.f1 for p in pairs if p.f1 is not None]
    alpha = [p.alpha for p in pairs if p.alpha is not None]
    return {
        "iou_threshold": iou_threshold,
        "n_images": len(boxes.images),
        "n_annotators": len(boxes.annotators),
        "n_boxes": len(boxes.xywh),
        "mean_f1": float(np.mean(f1)) if f1 else None,
        "mean_alpha": float(np.mean(alpha)) if alpha else None,
        "pairs": [p.to_dict() for p in pairs],
    }
