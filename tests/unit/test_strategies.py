"""Selection strategies and uncertainty scores against hand-computed answers."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from dataops.scoring import uncertainty
from dataops.selection import registry
from dataops.selection import strategies as s

# Dyadic probabilities: exact in binary, so no accidental float near-ties.
PROBS = np.array(
    [
        [0.875, 0.125, 0.0],  # LC .125   margin .25    entropy .377
        [0.5, 0.5, 0.0],  # LC .5     margin 1.0    entropy .693
        [0.375, 0.3125, 0.3125],  # LC .625   margin .9375  entropy 1.095
        [0.625, 0.25, 0.125],  # LC .375   margin .625   entropy .900
        [0.5625, 0.4375, 0.0],  # LC .4375  margin .875   entropy .685
    ]
)


def test_scores_match_closed_form() -> None:
    probs = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.7, 0.2, 0.1]])
    np.testing.assert_allclose(uncertainty.least_confidence(probs), [0.0, 0.5, 2 / 3, 0.3])
    np.testing.assert_allclose(uncertainty.margin(probs), [0.0, 1.0, 1.0, 0.5])
    expected_entropy = [0.0, math.log(2), math.log(3), -sum(p * math.log(p) for p in probs[3])]
    np.testing.assert_allclose(uncertainty.entropy(probs), expected_entropy)
    scores = uncertainty.all_scores(probs)
    assert set(scores) == set(uncertainty.SCORE_NAMES)
    np.testing.assert_array_equal(scores["margin"], uncertainty.margin(probs))


@pytest.mark.parametrize(
    ("probs", "message"),
    [
        (np.array([0.5, 0.5]), "2-D"),
        (np.array([[1.0], [1.0]]), "at least 2 classes"),
        (np.array([[0.5, 0.6]]), "sum to 1"),
        (np.array([[2.0, -1.0]]), r"\[0, 1\]"),
        (np.array([[np.nan, 1.0]]), "NaN"),
        (np.array([["a", "b"]]), "real numbers"),
    ],
)
def test_invalid_probabilities_are_rejected(probs: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        uncertainty.margin(probs)


def test_logits_get_a_hint() -> None:
    with pytest.raises(ValueError, match="not logits"):
        uncertainty.entropy(np.array([[2.0, 1.0], [0.1, 0.3]]) / 2)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("least_confidence", [2, 1, 4]),
        ("margin", [1, 2, 4]),
        ("entropy", [2, 3, 1]),
    ],
)
def test_uncertainty_strategies_pick_known_rows(strategy: str, expected: list[int]) -> None:
    picks = registry.select(strategy, 3, probs=PROBS)
    assert picks.tolist() == expected
    assert picks.dtype == np.int64


@pytest.mark.parametrize("strategy", ["least_confidence", "margin", "entropy"])
def test_k_larger_than_pool_returns_every_row_once_ranked(strategy: str) -> None:
    picks = registry.select(strategy, 50, probs=PROBS)
    assert sorted(picks.tolist()) == [0, 1, 2, 3, 4]
    full = registry.select(strategy, 5, probs=PROBS)
    np.testing.assert_array_equal(picks, full)


def test_k_zero_and_negative() -> None:
    assert registry.select("margin", 0, probs=PROBS).size == 0
    with pytest.raises(ValueError, match="non-negative integer"):
        registry.select("margin", -1, probs=PROBS)
    with pytest.raises(ValueError, match="non-negative integer"):
        registry.select("margin", 2.5, probs=PROBS)  # type: ignore[arg-type]


def test_ties_follow_the_seeded_permutation() -> None:
    confident = [0.9375, 0.0625]
    tied = [0.5, 0.5]
    probs = np.array([tied, confident, tied, confident, tied, tied])
    tied_rows = {0, 2, 4, 5}
    first_picks = set()
    for seed in range(20):
        picks = s.margin(probs, 2, seed=seed)
        assert set(picks.tolist()) <= tied_rows
        np.testing.assert_array_equal(picks, s.margin(probs, 2, seed=seed))
        first_picks.add(int(picks[0]))
    assert first_picks == tied_rows, "every tied row should come first for some seed"


def test_all_tied_scores_reduce_to_random_with_the_same_seed() -> None:
    probs = np.full((30, 4), 0.25)
    for seed in (0, 1, 7):
        np.testing.assert_array_equal(s.entropy(probs, 10, seed=seed), s.random(30, 10, seed))


def test_random_is_deterministic_per_seed_and_varies_across_seeds() -> None:
    a = registry.select("random", 10, n_items=100, seed=3)
    np.testing.assert_array_equal(a, registry.select("random", 10, n_items=100, seed=3))
    assert len(set(a.tolist())) == 10
    assert not np.array_equal(a, registry.select("random", 10, n_items=100, seed=4))
    assert sorted(s.random(3, 10).tolist()) == [0, 1, 2]


@pytest.mark.parametrize(
    "strategy",
    ["random", "least_confidence", "margin", "entropy", "kcenter", "cluster_margin"],
)
def test_every_strategy_is_deterministic_for_a_seed(strategy: str) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=60)
    embeddings = rng.normal(size=(60, 5))
    runs = [
        registry.select(strategy, 12, probs=probs, embeddings=embeddings, seed=11) for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert len(set(runs[0].tolist())) == 12


def _covering_radius(points: np.ndarray, centers: np.ndarray) -> float:
    return float(cdist(points, points[centers]).min(axis=1).max())


@pytest.mark.parametrize("seed", range(8))
def test_kcenter_is_within_twice_the_brute_force_optimum(seed: int) -> None:
    points = np.random.default_rng(seed).normal(size=(9, 2))
    k = 3
    optimum = min(
        _covering_radius(points, np.array(c)) for c in itertools.combinations(range(9), k)
    )
    greedy = s.kcenter(points, k, seed=seed)
    assert len(set(greedy.tolist())) == k
    radius = _covering_radius(points, greedy)
    assert optimum <= radius <= 2 * optimum + 1e-12


def test_kcenter_starts_from_the_labeled_set() -> None:
    line = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    picks = s.kcenter(line, 2, labeled_embeddings=np.array([[0.0]]))
    assert picks.tolist() == [4, 2]  # 11 is farthest from 0; then 2 (2 from 0; 10 is 1 from 11)
    picks = s.kcenter(line, 5, labeled_embeddings=np.array([[0.0]]))
    assert sorted(picks.tolist()) == [0, 1, 2, 3, 4]


def test_kcenter_duplicates_are_never_picked_twice() -> None:
    points = np.zeros((4, 3))
    picks = s.kcenter(points, 4, seed=1)
    assert sorted(picks.tolist()) == [0, 1, 2, 3]


def test_kcenter_matches_a_dense_reference_on_a_larger_pool() -> None:
    rng = np.random.default_rng(5)
    pool = rng.normal(size=(2000, 16))
    labeled = rng.normal(size=(300, 16))
    picks = s.kcenter(pool, 15, labeled_embeddings=labeled)
    min_d = cdist(pool, labeled).min(axis=1)
    expected = []
    for _ in range(15):
        best = int(np.argmax(min_d))
        expected.append(best)
        min_d = np.minimum(min_d, np.linalg.norm(pool - pool[best], axis=1))
    assert picks.tolist() == expected


def test_kcenter_rejects_embeddings_from_another_model() -> None:
    with pytest.raises(ValueError, match="same model version"):
        s.kcenter(np.zeros((3, 4)), 1, labeled_embeddings=np.zeros((2, 5)))


def _blobs(sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    centers = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
    rng = np.random.default_rng(0)
    cluster = np.repeat(np.arange(len(sizes)), sizes)
    return centers[cluster] + rng.normal(scale=0.5, size=(len(cluster), 2)), cluster


def test_cluster_margin_round_robins_smallest_cluster_first() -> None:
    embeddings, cluster = _blobs([5, 2, 3])  # clusters 0, 1, 2
    probs = np.full((10, 2), 0.5)
    picks = s.cluster_margin(probs, embeddings, 10, n_clusters=3, seed=4)
    assert cluster[picks].tolist() == [1, 2, 0, 1, 2, 0, 2, 0, 0, 0]
    assert sorted(picks.tolist()) == list(range(10))
    first_four = s.cluster_margin(probs, embeddings, 4, n_clusters=3, seed=4)
    assert cluster[first_four].tolist() == [1, 2, 0, 1]


def test_cluster_margin_only_takes_from_the_most_uncertain() -> None:
    embeddings, cluster = _blobs([4, 4])
    probs = np.tile([0.9375, 0.0625], (8, 1))
    uncertain = [1, 2, 5]  # two in cluster 0, one in cluster 1
    probs[uncertain] = [0.5, 0.5]
    picks = s.cluster_margin(probs, embeddings, 2, n_clusters=2, margin_pool=1.5)
    assert set(picks.tolist()) <= set(uncertain)
    assert cluster[picks].tolist() == [1, 0]


def test_cluster_margin_uses_kmeans_above_the_hac_limit() -> None:
    embeddings, cluster = _blobs([30, 30, 30, 30])
    probs = np.full((120, 2), 0.5)
    picks = s.cluster_margin(probs, embeddings, 8, n_clusters=4, hac_max_points=50, seed=2)
    assert sorted(np.bincount(cluster[picks]).tolist()) == [2, 2, 2, 2]


def test_round_robin_breaks_equal_sizes_by_seed() -> None:
    rows = np.arange(6)
    clusters = np.array([7, 7, 8, 8, 9, 9])
    orders = {tuple(s.round_robin(rows, clusters, 3, seed).tolist()) for seed in range(10)}
    for order in orders:
        assert sorted(clusters[list(order)].tolist()) == [7, 8, 9]
    assert len(orders) > 1


HN_PROBS = np.array(
    [
        [0.1, 0.9],  # labeled 1 (positive: never a hard negative)
        [0.2, 0.8],  # labeled 0
        [0.7, 0.3],  # labeled 0
        [0.4, 0.6],  # unlabeled
        [0.05, 0.95],  # unlabeled
        [0.5, 0.5],  # labeled 0
    ]
)
HN_LABELS = np.array([1, 0, 0, -1, -1, 0])


def test_hard_negative_labeled_mode_ranks_other_labels_by_class_score() -> None:
    picks = registry.select(
        "hard_negative", 5, probs=HN_PROBS, labels=HN_LABELS, class_index=1, mode="labeled"
    )
    assert picks.tolist() == [1, 5, 2]


def test_hard_negative_unlabeled_mode() -> None:
    picks = s.hard_negative(HN_PROBS, 5, 1, mode="unlabeled", labels=HN_LABELS)
    assert picks.tolist() == [4, 3]
    everything = s.hard_negative(HN_PROBS, 2, 1, mode="unlabeled")
    assert everything.tolist() == [4, 0]
    class_zero = s.hard_negative(HN_PROBS, 1, 0, mode="labeled", labels=HN_LABELS)
    assert class_zero.tolist() == [0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"class_index": 2, "mode": "labeled", "labels": HN_LABELS}, "class_index"),
        ({"class_index": 1, "mode": "sideways"}, "mode must be one of"),
        ({"class_index": 1, "mode": "labeled"}, "needs labels"),
        ({"class_index": 1, "mode": "labeled", "labels": HN_LABELS[:3]}, "disagree"),
        ({"class_index": 1, "mode": "labeled", "labels": HN_LABELS * 1.0}, "integer"),
        ({"mode": "labeled", "labels": HN_LABELS}, "class_index"),
        ({"class_index": 1, "labels": HN_LABELS}, "mode"),
    ],
)
def test_hard_negative_input_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        registry.select("hard_negative", 2, probs=HN_PROBS, **kwargs)


@pytest.mark.parametrize(
    ("sizes", "k", "expected"),
    [
        ([90, 10], 10, [9, 1]),
        ([98, 1, 1], 3, [1, 1, 1]),
        ([98, 1, 1], 2, [2, 0, 0]),
        ([6, 3, 1], 5, [3, 1, 1]),
        ([5, 0, 5], 4, [2, 0, 2]),
        ([3, 2], 9, [3, 2]),
        ([], 3, []),
    ],
)
def test_allocate_known_cases(sizes: list[int], k: int, expected: list[int]) -> None:
    assert s.allocate(np.array(sizes, dtype=np.int64), k).tolist() == expected


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=12),
    k=st.integers(min_value=0, max_value=400),
)
def test_allocate_properties(sizes: list[int], k: int) -> None:
    arr = np.array(sizes)
    alloc = s.allocate(arr, k)
    assert alloc.sum() == min(k, arr.sum())
    assert (alloc <= arr).all()
    assert (alloc >= 0).all()
    nonempty = arr > 0
    if k >= nonempty.sum():
        assert (alloc[nonempty] >= 1).all()
    if 0 < k < arr.sum() and (k * arr / arr.sum() >= 1)[nonempty].all():
        assert (np.abs(alloc - k * arr / arr.sum()) < 1).all()


def test_stratified_runs_the_inner_strategy_per_stratum() -> None:
    strata = np.array(["a"] * 6 + ["b"] * 3 + ["c"])
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=10)
    margins = uncertainty.margin(probs)
    picks = registry.select("stratified", 5, probs=probs, strata=strata, inner="margin")
    assert len(picks) == 5
    chosen = strata[picks].tolist()
    assert (chosen.count("a"), chosen.count("b"), chosen.count("c")) == (3, 1, 1)
    for name, count in (("a", 3), ("b", 1)):
        rows = np.flatnonzero(strata == name)
        best = rows[np.argsort(-margins[rows], kind="stable")[:count]]
        assert sorted(p for p in picks.tolist() if strata[p] == name) == sorted(best.tolist())


def test_stratified_hard_negatives_count_only_eligible_rows() -> None:
    strata = np.array(["x", "x", "y", "y", "y", "y"])
    labels = np.array([0, 0, 1, 1, 1, 0])
    probs = np.tile([0.5, 0.5], (6, 1))
    picks = registry.select(
        "stratified",
        3,
        probs=probs,
        labels=labels,
        strata=strata,
        inner="hard_negative",
        class_index=1,
        mode="labeled",
    )
    assert sorted(picks.tolist()) == [0, 1, 5]


def test_stratified_with_a_custom_inner() -> None:
    picks = s.stratified(np.array([2, 1, 2, 1]), 2, lambda rows, k: rows[:k])
    assert picks.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("strategy", "kwargs", "message"),
    [
        ("best", {"probs": PROBS}, "unknown strategy 'best'"),
        ("kcenter", {"probs": PROBS}, "needs embeddings.*embedding output"),
        ("cluster_margin", {"probs": PROBS}, "needs embeddings"),
        ("margin", {"embeddings": np.zeros((5, 2))}, "needs probs"),
        ("margin", {"probs": PROBS, "embeddings": np.zeros((4, 2))}, "disagree"),
        ("random", {}, "pool size"),
        ("stratified", {"probs": PROBS}, "needs strata"),
        ("stratified", {"probs": PROBS, "strata": np.zeros(5)}, "inner"),
        ("stratified", {"strata": np.zeros(5), "inner": "stratified"}, "inner"),
        ("stratified", {"strata": np.zeros(5), "inner": "kcenter"}, "needs embeddings"),
    ],
)
def test_select_explains_bad_requests(strategy: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        registry.select(strategy, 2, **kwargs)


def test_select_matches_the_direct_functions() -> None:
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(5), size=40)
    emb = rng.normal(size=(40, 8))
    labeled = rng.normal(size=(6, 8))
    np.testing.assert_array_equal(
        registry.select("kcenter", 7, embeddings=emb, labeled_embeddings=labeled, seed=2),
        s.kcenter(emb, 7, labeled_embeddings=labeled, seed=2),
    )
    np.testing.assert_array_equal(
        registry.select("cluster_margin", 7, probs=probs, embeddings=emb, seed=2),
        s.cluster_margin(probs, emb, 7, seed=2),
    )
    np.testing.assert_array_equal(
        registry.select("random", 7, probs=probs, seed=2), s.random(40, 7, seed=2)
    )
    assert set(registry.names()) == {
        "random",
        "least_confidence",
        "margin",
        "entropy",
        "kcenter",
        "cluster_margin",
        "hard_negative",
        "stratified",
        "label_issues",
    }


def test_each_strategy_says_what_it_needs() -> None:
    needs = {
        name: (st.needs_model, st.needs_embeddings, st.needs_class, st.without_model)
        for name, st in registry.REGISTRY.items()
    }
    assert needs["random"] == (False, False, False, True)
    assert needs["kcenter"] == (False, False, False, True)
    assert needs["margin"] == (True, False, False, False)
    assert needs["cluster_margin"] == (True, True, False, False)
    assert needs["hard_negative"] == (True, False, True, False)
    assert registry.REGISTRY["stratified"].needs_strata


def test_a_registered_strategy_is_selectable_by_name() -> None:
    def last_rows(c: registry.Candidates, k: int) -> np.ndarray:
        return np.arange(c.n - 1, -1, -1, dtype=np.int64)[:k]

    registry.register(registry.Strategy("last", last_rows, "the newest rows first"))
    try:
        assert registry.select("last", 2, n_items=5).tolist() == [4, 3]
        strata = np.array([0, 0, 1, 1, 1])
        picks = registry.select("stratified", 2, strata=strata, inner="last")
        assert sorted(picks.tolist()) == [1, 4]
    finally:
        del registry.REGISTRY["last"]
