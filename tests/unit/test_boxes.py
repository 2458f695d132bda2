"""Box matching and box agreement."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataops.audits.boxes import (
    BoxAnnotations,
    box_agreement,
    iou_matrix,
    match_boxes,
    pair_agreement,
    paired_iou,
)


def _iou_scalar(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / (aw * ah + bw * bh - inter)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0.1, 0.1, 0.2, 0.2), (0.1, 0.1, 0.2, 0.2), 1.0),
        ((0.0, 0.0, 0.2, 0.2), (0.5, 0.5, 0.2, 0.2), 0.0),
        ((0.0, 0.0, 0.2, 0.2), (0.2, 0.0, 0.2, 0.2), 0.0),  # touching edges
        ((0.0, 0.0, 0.2, 0.2), (0.1, 0.0, 0.2, 0.2), 1 / 3),  # 0.02 / 0.06
        ((0.0, 0.0, 0.4, 0.4), (0.1, 0.1, 0.2, 0.2), 0.25),  # contained: 0.04 / 0.16
        ((0.0, 0.0, 0.2, 0.2), (0.1, 0.1, 0.2, 0.2), 1 / 7),  # 0.01 / 0.07
    ],
)
def test_iou_hand_computed(a: tuple[float, ...], b: tuple[float, ...], expected: float) -> None:
    assert iou_matrix([a], [b])[0, 0] == pytest.approx(expected)
    assert iou_matrix([b], [a])[0, 0] == pytest.approx(expected)


box = st.tuples(st.floats(0, 0.9), st.floats(0, 0.9), st.floats(0.01, 0.5), st.floats(0.01, 0.5))


@settings(max_examples=50, deadline=None)
@given(a=st.lists(box, min_size=1, max_size=6), b=st.lists(box, min_size=1, max_size=6))
def test_vectorized_iou_matches_scalar(
    a: list[tuple[float, ...]], b: list[tuple[float, ...]]
) -> None:
    got = iou_matrix(a, b)
    expected = np.array([[_iou_scalar(x, y) for y in b] for x in a])
    assert got.shape == (len(a), len(b))
    assert np.allclose(got, expected)
    assert np.allclose(paired_iou(a, a), 1.0)


def _greedy(a: list[tuple[float, ...]], b: list[tuple[float, ...]], threshold: float) -> int:
    iou = iou_matrix(a, b)
    used_a: set[int] = set()
    used_b: set[int] = set()
    for flat in np.argsort(-iou, axis=None):
        i, j = np.unravel_index(flat, iou.shape)
        if iou[i, j] >= threshold and i not in used_a and j not in used_b:
            used_a.add(int(i))
            used_b.add(int(j))
    return len(used_a)


def test_hungarian_beats_greedy_on_crafted_case() -> None:
    # A1 = B1 exactly (IoU 1); A1-B2 and A2-B1 overlap at IoU 0.6; A2-B2 only at 1/3.
    # Greedy takes A1-B1 first and strands A2 and B2; Hungarian pairs A1-B2 and A2-B1.
    a = [(0.2, 0.0, 0.4, 1.0), (0.1, 0.0, 0.4, 1.0)]
    b = [(0.2, 0.0, 0.4, 1.0), (0.3, 0.0, 0.4, 1.0)]
    assert iou_matrix(a, b) == pytest.approx(np.array([[1.0, 0.6], [0.6, 1 / 3]]))
    assert _greedy(a, b, 0.5) == 1
    match = match_boxes(a, b, iou_threshold=0.5)
    assert sorted(zip(match.rows.tolist(), match.cols.tolist(), strict=True)) == [(0, 1), (1, 0)]
    assert match.iou == pytest.approx([0.6, 0.6])


def test_matching_prefers_more_matches_over_one_perfect_match() -> None:
    # At a low threshold two weak matches (IoU 0.21/0.59 each) must beat one perfect match
    # that leaves the other two boxes unmatched: a forbidden pair must cost more than any
    # allowed one, not just 1.
    a = [(0.2, 0.0, 0.4, 1.0), (0.01, 0.0, 0.4, 1.0)]
    b = [(0.2, 0.0, 0.4, 1.0), (0.39, 0.0, 0.4, 1.0)]
    match = match_boxes(a, b, iou_threshold=0.3)
    assert len(match.rows) == 2
    assert match.iou == pytest.approx([0.21 / 0.59, 0.21 / 0.59])


def test_matching_maximises_total_iou_among_full_matchings() -> None:
    a = [(0.0, 0.0, 0.4, 1.0), (0.05, 0.0, 0.4, 1.0)]
    b = [(0.0, 0.0, 0.4, 1.0), (0.05, 0.0, 0.4, 1.0)]
    match = match_boxes(a, b, iou_threshold=0.5)
    assert match.iou == pytest.approx([1.0, 1.0])


def test_matching_edge_cases() -> None:
    assert len(match_boxes([], [(0, 0, 0.1, 0.1)]).rows) == 0
    far = match_boxes([(0, 0, 0.1, 0.1)], [(0.5, 0.5, 0.1, 0.1)])
    assert len(far.rows) == 0
    with pytest.raises(ValueError, match="iou_threshold"):
        match_boxes([(0, 0, 0.1, 0.1)], [(0, 0, 0.1, 0.1)], iou_threshold=0)


def _scene(
    rng: np.random.Generator, n_images: int, jitter: float, noise: np.ndarray | None = None
) -> list[tuple[object, ...]]:
    records: list[tuple[object, ...]] = []
    k = 0
    for image in range(n_images):
        for _ in range(4):
            x, y = rng.random(2) * 0.7
            w, h = 0.1 + rng.random(2) * 0.15
            label = ["car", "person"][int(rng.integers(0, 2))]
            records.append((image, "a", label, x, y, w, h))
            dx, dy = (noise[k] if noise is not None else np.zeros(2)) * jitter
            records.append((image, "b", label, x + dx, y + dy, w, h))
            k += 1
    return records


def test_identical_boxes_agree_perfectly() -> None:
    boxes = BoxAnnotations.from_records(_scene(np.random.default_rng(0), 20, 0.0))
    result = pair_agreement(boxes, "a", "b")
    assert result.n_matched == result.n_boxes_a == result.n_boxes_b == 80
    assert result.precision == result.recall == result.f1 == 1.0
    assert result.alpha == pytest.approx(1.0)
    assert result.matched_iou == pytest.approx(np.ones(80))
    assert all(v == 1.0 for v in result.image_f1.values())


def test_alpha_decreases_with_jitter() -> None:
    noise = np.random.default_rng(9).normal(size=(200, 2))
    alphas, ious = [], []
    for jitter in (0.0, 0.005, 0.01, 0.02, 0.04):
        records = _scene(np.random.default_rng(1), 50, jitter, noise)
        result = pair_agreement(BoxAnnotations.from_records(records), "a", "b")
        alphas.append(result.alpha)
        ious.append(float(result.matched_iou.mean()))
    assert alphas[0] == pytest.approx(1.0)
    assert all(x > y for x, y in itertools.pairwise(alphas))
    assert all(x > y for x, y in itertools.pairwise(ious))


def test_alpha_by_hand() -> None:
    # Image 1: one matched pair at IoU 1/3; image 2: a box only annotator a drew.
    # Units: 2, D_o = ((1 - 1/3) + 1) / 2 = 5/6. Values: 4 (one empty), 12 ordered pairs;
    # only the matched pair shares image and class: S = 2/3, D_e = 1 - (2/3)/12 = 17/18.
    # alpha = 1 - (5/6) / (17/18) = 2/17.
    boxes = BoxAnnotations.from_records(
        [
            (1, "a", "car", 0.0, 0.0, 0.2, 0.2),
            (1, "b", "car", 0.1, 0.0, 0.2, 0.2),
            (2, "a", "car", 0.5, 0.5, 0.2, 0.2),
        ],
        labeled=[(2, "b")],
    )
    result = pair_agreement(boxes, "a", "b", iou_threshold=0.3)
    assert result.n_matched == 1
    assert result.alpha == pytest.approx(2 / 17)
    assert result.recall == 0.5
    assert result.precision == 1.0
    assert result.image_f1 == {1: 1.0, 2: 0.0}


def test_classes_must_agree_to_match() -> None:
    boxes = BoxAnnotations.from_records(
        [(1, "a", "car", 0.1, 0.1, 0.2, 0.2), (1, "b", "truck", 0.1, 0.1, 0.2, 0.2)]
    )
    result = pair_agreement(boxes, "a", "b")
    assert result.n_matched == 0
    assert result.f1 == 0.0
    per_class = {row["label"]: row for row in result.per_class}
    assert per_class["car"]["n_boxes_a"] == 1
    assert per_class["truck"]["n_boxes_b"] == 1


def test_only_images_both_labeled_are_compared() -> None:
    records = [
        (1, "a", "car", 0.1, 0.1, 0.2, 0.2),
        (1, "b", "car", 0.1, 0.1, 0.2, 0.2),
        (2, "a", "car", 0.1, 0.1, 0.2, 0.2),  # b never saw image 2
        (3, "a", "car", 0.1, 0.1, 0.2, 0.2),  # b saw image 3 and drew nothing
    ]
    boxes = BoxAnnotations.from_records(records, labeled=[(3, "b")])
    result = pair_agreement(boxes, "a", "b")
    assert result.n_images == 2
    assert result.n_boxes_a == 2
    assert result.n_matched == 1
    assert result.recall == 0.5


def _slow_pair(records: list[tuple[object, ...]], threshold: float) -> tuple[int, float, float]:
    """Per image and class matching with match_boxes, and alpha from its definition."""
    groups: dict[tuple[object, object], dict[str, list[tuple[float, ...]]]] = {}
    for image, ann, label, *xywh in records:
        groups.setdefault((image, label), {"a": [], "b": []})[str(ann)].append(tuple(xywh))
    units: list[tuple[object, tuple[float, ...] | None, tuple[float, ...] | None]] = []
    matched_iou = []
    for key, g in groups.items():
        m = match_boxes(g["a"], g["b"], iou_threshold=threshold)
        matched_iou.extend(m.iou.tolist())
        for r, c in zip(m.rows.tolist(), m.cols.tolist(), strict=True):
            units.append((key, g["a"][r], g["b"][c]))
        for r in set(range(len(g["a"]))) - set(m.rows.tolist()):
            units.append((key, g["a"][r], None))
        for c in set(range(len(g["b"]))) - set(m.cols.tolist()):
            units.append((key, None, g["b"][c]))
    values = [(key, v) for key, va, vb in units for v in (va, vb)]

    def dist(x: tuple[object, object], y: tuple[object, object]) -> float:
        (kx, bx), (ky, by) = x, y
        if bx is None or by is None or kx != ky:
            return 1.0
        return 1.0 - _iou_scalar(bx, by)

    n = len(values)
    d_o = sum(dist((k, a), (k, b)) for k, a, b in units) / len(units)
    d_e = sum(dist(values[i], values[j]) for i in range(n) for j in range(n) if i != j)
    d_e /= n * (n - 1)
    return len(matched_iou), float(np.sum(matched_iou)), 1 - d_o / d_e


@pytest.mark.parametrize("seed", range(3))
def test_vectorized_pair_agreement_matches_slow_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    records: list[tuple[object, ...]] = []
    for image in range(12):
        for ann in ("a", "b"):
            for _ in range(int(rng.integers(0, 6))):
                x, y = rng.random(2) * 0.5
                w, h = 0.2 + rng.random(2) * 0.3
                records.append((image, ann, ["car", "dog"][int(rng.integers(0, 2))], x, y, w, h))
    labeled = [(image, ann) for image in range(12) for ann in ("a", "b")]
    boxes = BoxAnnotations.from_records(records, labeled=labeled)
    result = pair_agreement(boxes, "a", "b", iou_threshold=0.3)
    n_matched, iou_sum, alpha = _slow_pair(records, 0.3)
    assert result.n_matched == n_matched
    assert result.matched_iou.sum() == pytest.approx(iou_sum)
    assert result.alpha == pytest.approx(alpha)
    for box_a, box_b in result.matched_boxes.tolist():
        assert boxes.annotator_idx[box_a] == 0
        assert boxes.annotator_idx[box_b] == 1
        assert boxes.image_idx[box_a] == boxes.image_idx[box_b]
        assert boxes.class_idx[box_a] == boxes.class_idx[box_b]


def test_box_agreement_covers_every_pair() -> None:
    records = [
        (img, ann, "car", 0.1 + 0.01 * k, 0.1, 0.3, 0.3)
        for img in range(3)
        for k, ann in enumerate(("a", "b", "c"))
    ]
    result = box_agreement(BoxAnnotations.from_records(records))
    assert [(p["annotator_a"], p["annotator_b"]) for p in result["pairs"]] == [
        ("a", "b"),
        ("a", "c"),
        ("b", "c"),
    ]
    assert result["mean_f1"] == 1.0
    assert 0 < result["mean_alpha"] < 1
    assert result["pairs"][0]["iou"]["p50"] == pytest.approx(0.3 * 0.29 / (0.18 - 0.3 * 0.29))


def test_bad_boxes_are_rejected() -> None:
    with pytest.raises(ValueError, match="w, h > 0"):
        BoxAnnotations.from_records([(1, "a", "car", 0.1, 0.1, 0.0, 0.2)])
    with pytest.raises(ValueError, match="unknown annotator"):
        pair_agreement(BoxAnnotations.from_records([(1, "a", "car", 0, 0, 0.1, 0.1)]), "a", "z")
