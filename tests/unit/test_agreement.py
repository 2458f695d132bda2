"""Agreement metrics against published worked examples and reference libraries."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from dataops.audits.agreement import (
    agreement_summary,
    cohen_kappa,
    confusion_matrix,
    confusion_vs_reference,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha,
    pairwise_kappa,
    per_annotator_agreement,
    per_class_agreement,
    percent_agreement,
    weighted_kappa,
)
from dataops.audits.gold import gold_accuracy, majority_vote
from dataops.audits.intervals import bootstrap_ci, resampled_statistics
from dataops.audits.ratings import Ratings, group_pairs, read_ratings_csv

# Fleiss (1971), as worked through on Wikipedia's "Fleiss' kappa" page: 10 subjects,
# 14 raters each, 5 categories; P-bar = 0.378, P-e = 0.213, kappa = 0.210.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
# 12 units, values 1-5, missing data. Published: nominal 0.743, ordinal 0.815, interval 0.849.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def _from_table(table: list[list[int]]) -> Ratings:
    records = []
    for item, row in enumerate(table):
        rater = 0
        for category, count in enumerate(row):
            for _ in range(count):
                records.append((item, rater, category))
                rater += 1
    return Ratings.from_records(records)


def _from_matrix(matrix: list[list[int | None]]) -> Ratings:
    return Ratings.from_records(
        (item, coder, value)
        for coder, row in enumerate(matrix)
        for item, value in enumerate(row)
        if value is not None
    )


def _reliability_data(ratings: Ratings) -> np.ndarray:
    """The annotators x items float matrix (NaN = missing) that krippendorff.alpha takes."""
    values = np.asarray(ratings.categories, dtype=float)
    m = ratings.matrix
    return np.where(m >= 0, values[np.clip(m, 0, None)], np.nan)


def _reference_alpha(ratings: Ratings, level: str) -> float | None:
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            value = krippendorff.alpha(_reliability_data(ratings), level_of_measurement=level)
    except ValueError:
        return None
    return float(value) if math.isfinite(value) else None


def test_fleiss_kappa_reproduces_fleiss_1971_worked_example() -> None:
    ratings = _from_table(FLEISS_TABLE)
    assert fleiss_kappa(ratings) == pytest.approx(0.210, abs=5e-4)
    assert percent_agreement(ratings) == pytest.approx(0.378, abs=5e-4)


@pytest.mark.parametrize(
    ("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)]
)
def test_alpha_reproduces_krippendorff_2011_example(level: str, published: float) -> None:
    ratings = _from_matrix(KRIPPENDORFF_2011)
    assert krippendorff_alpha(ratings, level=level) == pytest.approx(published, abs=5e-4)


def test_summary_has_the_cli_contract_keys() -> None:
    summary = agreement_summary(_from_matrix(KRIPPENDORFF_2011))
    assert set(summary) == {
        "n_items",
        "n_items_paired",
        "n_annotators",
        "percent_agreement",
        "cohen_kappa",
        "fleiss_kappa",
        "gwet_ac1",
        "krippendorff_alpha",
        "standard_errors",
    }
    assert summary["n_items"] == 12
    assert summary["n_items_paired"] == 11
    assert summary["n_annotators"] == 4
    assert summary["cohen_kappa"] is None
    assert summary["krippendorff_alpha"] == pytest.approx(0.743, abs=5e-4)


def _random_ratings(
    rng: np.random.Generator, n_items: int, n_annotators: int, n_classes: int, missing: float
) -> Ratings:
    truth = rng.integers(0, n_classes, n_items)
    records = []
    for a in range(n_annotators):
        noisy = np.where(rng.random(n_items) < 0.7, truth, rng.integers(0, n_classes, n_items))
        for i in range(n_items):
            if rng.random() >= missing:
                records.append((f"item{i:04d}", f"ann{a}", int(noisy[i])))
    return Ratings.from_records(records)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_alpha_matches_krippendorff_package_with_missing_data(seed: int, level: str) -> None:
    ratings = _random_ratings(np.random.default_rng(seed), 300, 4, 5, missing=0.3)
    expected = _reference_alpha(ratings, level)
    assert expected is not None
    assert krippendorff_alpha(ratings, level=level) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_matches_sklearn(weights: str | None) -> None:
    rng = np.random.default_rng(3)
    ratings = _random_ratings(rng, 400, 2, 4, missing=0.1)
    ya, yb = ratings.matrix
    both = (ya >= 0) & (yb >= 0)
    expected = cohen_kappa_score(ya[both], yb[both], weights=weights)
    assert cohen_kappa(ratings, weights=weights) == pytest.approx(expected)
    identity = np.arange(ratings.n_items)[None, :]
    fast = resampled_statistics(ratings, identity, weights=weights)
    assert fast["cohen_kappa"][0] == pytest.approx(expected)
    assert agreement_summary(ratings, weights=weights)["cohen_kappa"] == pytest.approx(expected)


def test_cohen_kappa_needs_two_annotators() -> None:
    with pytest.raises(ValueError, match="exactly two"):
        cohen_kappa(_from_matrix(KRIPPENDORFF_2011))


# --- properties ------------------------------------------------------------------------------


@st.composite
def rating_records(draw: st.DrawFn) -> list[tuple[str, str, int]]:
    n_items = draw(st.integers(2, 25))
    n_annotators = draw(st.integers(2, 5))
    n_classes = draw(st.integers(2, 4))
    records = []
    for i in range(n_items):
        for a in range(n_annotators):
            value = draw(st.one_of(st.none(), st.integers(0, n_classes - 1)))
            if value is not None:
                records.append((f"i{i}", f"a{a}", value))
    assume(len({r[2] for r in records}) >= 2)
    return records


def _summary_values(ratings: Ratings) -> list[float | None]:
    summary = agreement_summary(ratings)
    keys = ("percent_agreement", "cohen_kappa", "fleiss_kappa", "gwet_ac1", "krippendorff_alpha")
    return [summary[k] for k in keys]


def _approx_equal(a: list[float | None], b: list[float | None]) -> bool:
    return all(
        (x is None and y is None)
        or (x is not None and y is not None and math.isclose(x, y, abs_tol=1e-9))
        for x, y in zip(a, b, strict=True)
    )


@settings(max_examples=60, deadline=None)
@given(records=rating_records(), data=st.data())
def test_invariant_to_relabeling_classes(
    records: list[tuple[str, str, int]], data: st.DataObject
) -> None:
    classes = sorted({r[2] for r in records})
    images = data.draw(st.permutations([f"class-{c * 7 + 3}" for c in classes]))
    mapping = dict(zip(classes, images, strict=True))
    relabeled = [(i, a, mapping[c]) for i, a, c in records]
    assert _approx_equal(
        _summary_values(Ratings.from_records(records)),
        _summary_values(Ratings.from_records(relabeled)),
    )


@settings(max_examples=60, deadline=None)
@given(records=rating_records(), data=st.data())
def test_invariant_to_order_of_items_and_annotators(
    records: list[tuple[str, str, int]], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(records))
    annotators = sorted({r[1] for r in records})
    renamed = dict(zip(annotators, data.draw(st.permutations(annotators)), strict=True))
    items = sorted({r[0] for r in records})
    item_names = dict(zip(items, data.draw(st.permutations(items)), strict=True))
    moved = [(item_names[i], renamed[a], c) for i, a, c in shuffled]
    assert _approx_equal(
        _summary_values(Ratings.from_records(records)),
        _summary_values(Ratings.from_records(moved)),
    )


@settings(max_examples=60, deadline=None)
@given(records=rating_records())
def test_alpha_matches_krippendorff_package_on_random_data(
    records: list[tuple[str, str, int]],
) -> None:
    ratings = Ratings.from_records(records)
    for level in ("nominal", "ordinal", "interval"):
        expected = _reference_alpha(ratings, level)
        got = krippendorff_alpha(ratings, level=level)
        if expected is None:
            assert got is None
        else:
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.sampled_from(["cat", "dog", "bird"]), min_size=2, max_size=30),
    n_annotators=st.integers(2, 5),
)
def test_perfect_agreement_scores_one(labels: list[str], n_annotators: int) -> None:
    assume(len(set(labels)) >= 2)
    ratings = Ratings.from_records(
        (i, a, label) for i, label in enumerate(labels) for a in range(n_annotators)
    )
    summary = agreement_summary(ratings)
    assert summary["percent_agreement"] == pytest.approx(1.0)
    assert summary["fleiss_kappa"] == pytest.approx(1.0)
    assert summary["krippendorff_alpha"] == pytest.approx(1.0)
    if n_annotators == 2:
        assert summary["cohen_kappa"] == pytest.approx(1.0)


def test_undefined_statistics_are_none() -> None:
    ratings = Ratings.from_records([(i, a, "same") for i in range(5) for a in range(3)])
    summary = agreement_summary(ratings)
    assert summary["percent_agreement"] == 1.0
    assert summary["fleiss_kappa"] is None
    assert summary["krippendorff_alpha"] is None
    single = Ratings.from_records([(1, "a", "x"), (2, "b", "y")])
    assert agreement_summary(single)["percent_agreement"] is None


# --- bootstrap -------------------------------------------------------------------------------


def test_bootstrap_is_reproducible_and_contains_the_estimate() -> None:
    ratings = _random_ratings(np.random.default_rng(11), 500, 3, 4, missing=0.2)
    summary = agreement_summary(ratings, n_resamples=400, seed=7)
    again = bootstrap_ci(ratings, n_resamples=400, seed=7)
    other = bootstrap_ci(ratings, n_resamples=400, seed=8)
    ci = summary["ci"]
    assert ci == again
    assert ci["krippendorff_alpha"] != other["krippendorff_alpha"]
    for key in ("percent_agreement", "fleiss_kappa", "gwet_ac1", "krippendorff_alpha"):
        low, high = ci[key]
        assert low < summary[key] < high
        assert high - low < 0.2
    assert ci["cohen_kappa"] is None


def test_bootstrap_interval_narrows_with_more_items() -> None:
    small = _random_ratings(np.random.default_rng(1), 100, 3, 4, missing=0.0)
    large = _random_ratings(np.random.default_rng(1), 2500, 3, 4, missing=0.0)
    width_small = np.diff(bootstrap_ci(small, n_resamples=300)["krippendorff_alpha"])[0]
    width_large = np.diff(bootstrap_ci(large, n_resamples=300)["krippendorff_alpha"])[0]
    assert width_large < width_small / 3


@pytest.mark.parametrize("n_annotators", [2, 4])
def test_fast_bootstrap_matches_recomputation_on_the_same_resamples(n_annotators: int) -> None:
    rng = np.random.default_rng(5)
    ratings = _random_ratings(rng, 60, n_annotators, 4, missing=0.25)
    resamples = rng.integers(0, ratings.n_items, size=(25, ratings.n_items))
    for level in ("nominal", "ordinal", "interval"):
        fast = resampled_statistics(ratings, resamples, level=level)
        for row, idx in enumerate(resamples):
            # Every drawn copy becomes a unit of its own, as the bootstrap treats it.
            records = [
                (copy, ratings.annotators[a], ratings.categories[lab])
                for copy, item in enumerate(idx)
                for a, lab in enumerate(ratings.matrix[:, item])
                if lab >= 0
            ]
            slow = Ratings.from_records(records, categories=ratings.categories)
            expected_alpha = _reference_alpha(slow, level)
            assert fast["krippendorff_alpha"][row] == pytest.approx(expected_alpha)
            if level == "nominal":
                assert fast["percent_agreement"][row] == pytest.approx(percent_agreement(slow))
                assert fast["fleiss_kappa"][row] == pytest.approx(fleiss_kappa(slow))
                assert fast["gwet_ac1"][row] == pytest.approx(gwet_ac1(slow).value)
                if n_annotators == 2:
                    assert fast["cohen_kappa"][row] == pytest.approx(cohen_kappa(slow))


def test_bootstrap_rejects_bad_arguments() -> None:
    ratings = _from_matrix(KRIPPENDORFF_2011)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci(ratings, n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(ratings, confidence=1.5)


# --- breakdowns ------------------------------------------------------------------------------


def test_pairwise_kappa_matrix() -> None:
    ratings = _random_ratings(np.random.default_rng(2), 200, 4, 3, missing=0.2)
    result = pairwise_kappa(ratings)
    assert result.kappa.shape == (4, 4)
    assert np.allclose(result.kappa, result.kappa.T)
    assert np.allclose(np.diag(result.kappa), 1.0)
    expected = cohen_kappa(ratings, "ann1", "ann3")
    assert result.kappa[1, 3] == pytest.approx(expected)
    ya, yb = ratings.matrix[1], ratings.matrix[3]
    assert result.shared_items[1, 3] == int(((ya >= 0) & (yb >= 0)).sum())


def test_pairwise_kappa_is_nan_without_shared_items() -> None:
    ratings = Ratings.from_records([(1, "a", "x"), (1, "b", "y"), (2, "c", "x"), (3, "c", "y")])
    result = pairwise_kappa(ratings)
    assert np.isnan(result.kappa[0, 2])
    assert result.shared_items[0, 2] == 0


def test_per_annotator_agreement_by_hand() -> None:
    ratings = Ratings.from_records(
        [
            (1, "a", "x"),
            (1, "b", "x"),
            (1, "c", "y"),
            (2, "a", "y"),
            (2, "b", "y"),
            (3, "a", "x"),
        ]
    )
    rows = {r["annotator"]: r for r in per_annotator_agreement(ratings)}
    # a: item1 agrees with b not c (1 of 2), item2 agrees with b (1 of 1), item3 alone.
    assert rows["a"]["agreement"] == pytest.approx(2 / 3)
    assert rows["a"]["n_items"] == 3
    assert rows["a"]["n_shared_items"] == 2
    assert rows["c"]["agreement"] == 0.0


def test_per_class_agreement() -> None:
    ratings = _from_matrix(KRIPPENDORFF_2011)
    rows = {r["label"]: r for r in per_class_agreement(ratings)}
    assert rows[5]["specific_agreement"] == 1.0
    # One-vs-rest alpha equals Krippendorff's alpha on the binarised data.
    data = _reliability_data(ratings)
    binary = np.where(np.isnan(data), np.nan, (data == 3).astype(float))
    expected = krippendorff.alpha(binary, level_of_measurement="nominal")
    assert rows[3]["alpha"] == pytest.approx(expected)
    # Specific agreement for value 2, by hand: sum c(c - 1) / sum c(n - 1). Units holding a 2
    # (c of n): unit 2 (3 of 4), 5 (4 of 4), 6 (1 of 4), 8 (1 of 4), 9 (4 of 4) ->
    # (6 + 12 + 0 + 0 + 12) / (9 + 12 + 3 + 3 + 12) = 30 / 39.
    assert rows[2]["specific_agreement"] == pytest.approx(30 / 39)


def test_confusion_matrices() -> None:
    ratings = Ratings.from_records(
        [(1, "a", "x"), (1, "b", "x"), (2, "a", "x"), (2, "b", "y"), (3, "a", "y"), (4, "b", "y")]
    )
    conf = confusion_matrix(ratings, "a", "b")
    assert conf.labels == ("x", "y")
    assert conf.matrix.tolist() == [[1, 1], [0, 0]]
    ref = confusion_vs_reference(ratings, {1: "x", 2: "y", 3: "z"})
    assert ref.labels == ("x", "y", "z")
    # rows: reference, columns: given labels, pooled over annotators
    assert ref.matrix.tolist() == [[2, 0, 0], [1, 1, 0], [0, 1, 0]]
    only_a = confusion_vs_reference(ratings, {1: "x", 2: "y"}, annotator="a")
    assert only_a.matrix.tolist() == [[1, 0], [1, 0]]


def test_gold_accuracy_with_threshold() -> None:
    records = [(i, "good", "x") for i in range(10)]
    records += [(i, "bad", "x" if i < 6 else "y") for i in range(10)]
    records += [(100, "new", "x")]
    gold = {i: "x" for i in range(10)}
    scores = {s.annotator: s for s in gold_accuracy(Ratings.from_records(records), gold)}
    assert scores["good"].accuracy == 1.0
    assert scores["good"].passed is True
    assert scores["bad"].n_gold == 10
    assert scores["bad"].n_correct == 6
    assert scores["bad"].passed is False
    assert scores["bad"].ci_low is not None
    assert scores["bad"].ci_low < 0.6 < scores["bad"].ci_high
    assert scores["new"].passed is None


def test_majority_vote_ties() -> None:
    ratings = Ratings.from_records(
        [(1, "a", "x"), (1, "b", "x"), (1, "c", "y"), (2, "a", "x"), (2, "b", "y"), (3, "a", "z")]
    )
    votes = majority_vote(ratings)
    assert votes[1].label == "x"
    assert votes[1].support == 2
    assert votes[1].share == pytest.approx(2 / 3)
    assert votes[2].label is None
    assert votes[2].tied
    assert votes[3].label == "z"
    drawn = {
        seed: majority_vote(ratings, tie_break="random", seed=seed)[2].label for seed in range(20)
    }
    assert set(drawn.values()) == {"x", "y"}
    assert majority_vote(ratings, tie_break="random", seed=3)[2].label == drawn[3]


def test_group_pairs_lists_every_equal_key_pair() -> None:
    left = np.array([3, 1, 3, 2])
    right = np.array([3, 3, 5, 1])
    pairs = set(zip(*group_pairs(left, right), strict=True))
    expected = {(i, j) for i in range(4) for j in range(4) if left[i] == right[j]}
    assert pairs == expected


# --- input -----------------------------------------------------------------------------------


def test_duplicate_rating_is_rejected() -> None:
    with pytest.raises(ValueError, match="more than once"):
        Ratings.from_records([(1, "a", "x"), (1, "a", "y")])


def test_explicit_category_order() -> None:
    ratings = Ratings.from_records(
        [(1, "a", "low"), (1, "b", "high")], categories=["low", "mid", "high"]
    )
    assert ratings.categories == ("low", "mid", "high")
    with pytest.raises(ValueError, match="not in categories"):
        Ratings.from_records([(1, "a", "huge")], categories=["low"])


def test_read_ratings_csv(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("item,annotator,label,note\nimg1,ann,cat,\nimg1,bob,dog,x\nimg2,ann,cat,\n")
    ratings = read_ratings_csv(path)
    assert ratings.n_items == 2
    assert ratings.n_annotators == 2
    assert ratings.categories == ("cat", "dog")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("item,label\n1,x\n", "line 1: missing column.*annotator"),
        ("item,annotator,label\n1,a,x\n2,,y\n", r"line 3, column 'annotator': empty"),
        ("item,annotator,label\n1,a,x\n2,b\n", r"line 3, column 'label': empty"),
        ("item,annotator,label\n1,a,x\n1,a,y\n", r"line 3.*already rated item '1' on line 2"),
        ("item,annotator,label\n1,a,x,extra\n", "line 2: more fields"),
        ("", "empty file"),
        ("item,annotator,label\n", "no ratings"),
    ],
)
def test_read_ratings_csv_errors_name_line_and_column(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_ratings_csv(path)


def test_read_ratings_csv_numeric(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_text("item,annotator,label\n1,a,1.5\n1,b,2\n2,a,3\n2,b,3\n")
    ratings = read_ratings_csv(path, numeric=True)
    assert ratings.categories == (1.5, 2.0, 3.0)
    assert krippendorff_alpha(ratings, level="interval") is not None
    path.write_text("item,annotator,label\n1,a,high\n")
    with pytest.raises(ValueError, match=r"line 2, column 'label': 'high' is not a number"):
        read_ratings_csv(path, numeric=True)


def test_interval_level_needs_numbers() -> None:
    ratings = Ratings.from_records([(1, "a", "x"), (1, "b", "y")])
    with pytest.raises(ValueError, match="numeric"):
        krippendorff_alpha(ratings, level="interval")


# --- Fleiss' kappa and Gwet's AC1 with missing ratings ---------------------------------------

# irrCAC's documented example data sets (Gwet 2014; Python irrCAC 0.4.4 `irrCAC.datasets`),
# items x raters with None for a missing rating.
IRRCAC_RAW_5OBSERVERS = [
    [1, 1, 2, None, 2],
    [1, 1, 0, 1, None],
    [2, 3, 3, 3, None],
    [None, 0, 0, None, 0],
    [0, 0, 0, None, 0],
    [0, 0, 0, None, 0],
    [1, 0, 2, None, 1],
    [1, None, 2, 0, None],
    [2, 2, 2, None, 2],
    [2, 1, 1, 1, None],
    [None, 1, 0, 0, None],
    [0, 0, 0, 0, None],
    [1, 2, 2, 2, None],
    [3, 3, 2, 2, 3],
    [1, 1, 1, None, 1],
]
IRRCAC_RAW_G1G2 = [
    ["a", "a", None, "a"],
    ["b", "b", "c", "b"],
    ["c", "c", "c", "c"],
    ["c", "c", "c", "c"],
    ["b", "b", "b", "b"],
    ["a", "b", "c", "d"],
    ["d", "d", "d", "d"],
    ["a", "a", "b", "a"],
    ["b", "b", "b", "b"],
    [None, "e", "e", "e"],
    [None, None, "a", "a"],
    [None, None, "c", None],
    ["b", "b", "c", "b"],
    ["b", "a", "c", "b"],
]
# 53 items, 5 raters, 1 to 5 ratings per item (3 items with one, 8 with two, 19 with three,
# 15 with four, 8 with five): the case where keeping only the modal rater count drops items.
MISSING_53 = [
    [2, 2, 0, 2, 2], [2, 2, 2, 2, 2], [2, None, 2, None, 2], [0, 2, None, 2, None],
    [1, 0, None, 2, 1], [None, 1, 2, 1, None], [1, 0, 0, 1, 1], [None, None, None, None, 0],
    [None, 1, 1, None, 1], [1, 1, 1, None, 1], [None, 2, 2, None, 0], [0, 0, 0, 0, 0],
    [2, 2, 0, 1, 2], [0, None, 1, 2, 2], [None, 1, 1, 1, 1], [1, None, 1, None, 1],
    [2, 2, 2, None, None], [None, 1, 1, None, 1], [0, 0, None, 0, None], [2, None, 0, None, None],
    [None, 0, None, 0, None], [2, 2, 2, None, 0], [1, None, 0, 0, None], [2, 2, None, None, None],
    [0, None, 0, None, 1], [1, 1, 1, 1, None], [None, None, None, 2, None], [2, None, None, 2, 0],
    [2, 2, None, 2, None], [0, 0, 0, None, 0], [2, None, 2, None, 2], [2, None, 1, 2, None],
    [0, 0, 0, 0, 1], [None, 1, 1, 1, 1], [1, None, 1, None, None], [0, 0, None, 2, 0],
    [0, 0, None, 1, 0], [None, 2, None, None, 1], [None, 1, None, None, None],
    [None, None, 2, 2, None], [0, 2, None, 2, 2], [0, 0, None, None, None], [0, 0, 0, 0, None],
    [2, 1, 2, 2, None], [None, None, None, 1, 0], [None, None, 1, 1, 1], [1, 1, None, 1, None],
    [2, 2, 2, 2, 2], [None, 1, 1, None, 1], [None, 2, 2, 0, 2], [2, 2, None, 2, None],
    [2, 2, 0, 2, None], [2, 1, 2, 2, 2],
]  # fmt: skip

# Values from irrCAC 0.4.4 (`CAC(ratings, digits=15).fleiss()` / `.gwet()`): coefficient,
# standard error, 95% interval. raw_4raters is Krippendorff's 2011 example (KRIPPENDORFF_2011).
IRRCAC_REFERENCE = {
    "raw_4raters": {
        "fleiss_kappa": (0.761169275422411, 0.153019203469492, (0.424376279378345, 1.0)),
        "gwet_ac1": (0.775444068126995, 0.142949950640765, (0.46081334813208, 1.0)),
    },
    "raw_5observers": {
        "fleiss_kappa": (0.45762168677217, 0.120450071940065, (0.199281975916482, 0.715961397627858)),
        "gwet_ac1": (0.496622054872614, 0.121973368005297, (0.235015198894462, 0.758228910850767)),
    },
    "raw_g1g2": {
        "fleiss_kappa": (0.657245283843749, 0.149918557033983, (0.33336593220567, 0.981124635481829)),
        "gwet_ac1": (0.684603818747768, 0.133533173469305, (0.39612293618691, 0.973084701308627)),
    },
    "missing_53": {
        "fleiss_kappa": (0.535396834005363, 0.076777595419575, (0.381331317606798, 0.689462350403927)),
        "gwet_ac1": (0.542267546391533, 0.075422525468867, (0.390921176777536, 0.69361391600553)),
    },
}  # fmt: skip


def _from_rows(rows: list[list[Any]]) -> Ratings:
    """Items x raters rows (None = not rated) as ratings."""
    return Ratings.from_records(
        (item, rater, value)
        for item, row in enumerate(rows)
        for rater, value in enumerate(row)
        if value is not None
    )


def _irrcac_datasets() -> dict[str, Ratings]:
    return {
        "raw_4raters": _from_matrix(KRIPPENDORFF_2011),
        "raw_5observers": _from_rows(IRRCAC_RAW_5OBSERVERS),
        "raw_g1g2": _from_rows(IRRCAC_RAW_G1G2),
        "missing_53": _from_rows(MISSING_53),
    }


@pytest.mark.parametrize("dataset", sorted(IRRCAC_REFERENCE))
@pytest.mark.parametrize("coefficient", ["fleiss_kappa", "gwet_ac1"])
def test_fleiss_and_ac1_match_irrcac_with_missing_ratings(dataset: str, coefficient: str) -> None:
    ratings = _irrcac_datasets()[dataset]
    value, se, (low, high) = IRRCAC_REFERENCE[dataset][coefficient]
    summary = agreement_summary(ratings)
    assert summary[coefficient] == pytest.approx(value, abs=1e-12)
    block = summary["standard_errors"][coefficient]
    assert block["se"] == pytest.approx(se, abs=1e-12)
    assert block["ci"] == pytest.approx([low, high], abs=1e-9)  # t quantiles differ in scipy
    assert summary["n_items"] == ratings.n_items
    # Every item counts: nothing is dropped for having a different number of raters.
    assert summary["n_items_paired"] == int((ratings.value_counts.sum(axis=1) >= 2).sum())


def test_fleiss_uses_every_item_not_only_the_modal_rater_count() -> None:
    ratings = _from_rows(MISSING_53)
    n = ratings.value_counts.sum(axis=1)
    assert np.bincount(n).tolist() == [0, 3, 8, 19, 15, 8]
    modal = ratings.value_counts[n == 3]
    assert abs(sm_fleiss_kappa(modal) - fleiss_kappa(ratings)) > 0.01  # the old answer
    assert fleiss_kappa(ratings) == pytest.approx(IRRCAC_REFERENCE["missing_53"]["fleiss_kappa"][0])
    summary = agreement_summary(ratings)
    assert (summary["n_items"], summary["n_items_paired"]) == (53, 50)


@pytest.mark.parametrize("seed", range(5))
def test_fleiss_matches_statsmodels_on_complete_data(seed: int) -> None:
    ratings = _random_ratings(np.random.default_rng(seed), 80, 4, 3, missing=0.0)
    assert (ratings.value_counts.sum(axis=1) == 4).all()
    expected = sm_fleiss_kappa(ratings.value_counts, method="fleiss")
    assert fleiss_kappa(ratings) == pytest.approx(expected, abs=1e-12)
    assert agreement_summary(ratings)["fleiss_kappa"] == pytest.approx(expected, abs=1e-12)


def test_ac1_reproduces_irrcac_published_two_rater_example() -> None:
    # irrCAC vignette, cont3x3abstractors: Gwet's AC1 0.8493305, Scott's pi 0.7962397 (which
    # is Fleiss' kappa for two raters). Expanded to one item per cell count.
    table = [[13, 0, 0], [0, 20, 7], [0, 4, 56]]
    records = []
    for a, row in enumerate(table):
        for b, count in enumerate(row):
            for _ in range(count):
                records += [(len(records), "r1", a), (len(records), "r2", b)]
    ratings = Ratings.from_records(records)
    assert gwet_ac1(ratings).value == pytest.approx(0.8493305, abs=5e-8)
    assert fleiss_kappa(ratings) == pytest.approx(0.7962397, abs=5e-8)


def test_kappa_paradox_on_skewed_classes() -> None:
    # 100 items, two raters, 88% raw agreement but 'yes' dominates: kappa collapses, AC1 not.
    cells = {("yes", "yes"): 84, ("yes", "no"): 4, ("no", "yes"): 8, ("no", "no"): 4}
    records = []
    for (a, b), count in cells.items():
        for _ in range(count):
            item = len(records)
            records += [(item, "r1", a), (item, "r2", b)]
    ratings = Ratings.from_records(records)
    summary = agreement_summary(ratings)
    assert summary["percent_agreement"] == pytest.approx(0.88)
    assert summary["cohen_kappa"] == pytest.approx(0.34, abs=0.005)
    assert summary["gwet_ac1"] == pytest.approx(0.85, abs=0.005)
    low, high = summary["standard_errors"]["gwet_ac1"]["ci"]
    assert low < summary["gwet_ac1"] < high <= 1.0


def test_ac1_interval_and_confidence() -> None:
    ratings = _from_rows(MISSING_53)
    wide = gwet_ac1(ratings, confidence=0.99)
    narrow = gwet_ac1(ratings, confidence=0.9)
    assert wide.ci is not None and narrow.ci is not None
    assert wide.ci[0] < narrow.ci[0] < narrow.ci[1] < wide.ci[1]
    assert wide.n_items == 53 and wide.n_items_paired == 50
    with pytest.raises(ValueError, match="confidence"):
        gwet_ac1(ratings, confidence=1.5)


def test_ac1_undefined_with_one_category() -> None:
    ratings = Ratings.from_records([(i, a, "same") for i in range(4) for a in range(2)])
    result = gwet_ac1(ratings)
    assert result.value is None and result.ci is None


# --- weighted kappa --------------------------------------------------------------------------


@pytest.mark.parametrize("weights", ["linear", "quadratic"])
def test_weighted_kappa_two_annotators_matches_sklearn_with_category_order(weights: str) -> None:
    order = ["low", "mid", "high"]  # alphabetical order (high < low < mid) would be wrong
    rng = np.random.default_rng(3)
    a = rng.integers(0, 3, 60)
    b = np.clip(a + rng.integers(-1, 2, 60), 0, 2)
    records = [(i, "x", order[v]) for i, v in enumerate(a)]
    records += [(i, "y", order[v]) for i, v in enumerate(b)]
    ratings = Ratings.from_records(records, categories=order)
    expected = cohen_kappa_score(a, b, weights=weights)
    assert weighted_kappa(ratings, weights) == pytest.approx(expected)  # type: ignore[arg-type]
    summary = agreement_summary(ratings, weights=weights)  # type: ignore[arg-type]
    assert summary["weights"] == weights
    assert summary["weighted_kappa"] == pytest.approx(expected)
    alphabetical = Ratings.from_records(records)
    assert weighted_kappa(alphabetical, weights) != pytest.approx(expected)  # type: ignore[arg-type]


@pytest.mark.parametrize("weights", ["linear", "quadratic"])
def test_weighted_kappa_is_mean_pairwise_for_more_annotators(weights: str) -> None:
    ratings = _from_matrix(KRIPPENDORFF_2011)
    m = ratings.matrix
    values = []
    for i in range(4):
        for j in range(i + 1, 4):
            both = (m[i] >= 0) & (m[j] >= 0)
            values.append(
                cohen_kappa_score(m[i, both], m[j, both], labels=range(5), weights=weights)
            )
    assert weighted_kappa(ratings, weights) == pytest.approx(np.mean(values))  # type: ignore[arg-type]
    assert "weighted_kappa" not in agreement_summary(ratings)


def test_weighted_kappa_rejects_unknown_weights() -> None:
    with pytest.raises(ValueError, match="linear or quadratic"):
        weighted_kappa(_from_matrix(KRIPPENDORFF_2011), "cubic")  # type: ignore[arg-type]


def test_annotators_who_share_no_item_have_an_empty_confusion() -> None:
    # a and b overlap on items 1-2, b and c on items 3-4; a and c never rated the same item,
    # as happens in any batch whose overlap does not pair every annotator with every other.
    ratings = Ratings.from_records(
        [
            (1, "a", "x"), (1, "b", "x"), (2, "a", "y"), (2, "b", "y"),
            (3, "b", "x"), (3, "c", "y"), (4, "b", "y"), (4, "c", "y"),
        ]
    )  # fmt: skip
    apart = confusion_matrix(ratings, "a", "c")
    assert apart.labels == ("x", "y")
    assert apart.matrix.tolist() == [[0, 0], [0, 0]]
    assert confusion_matrix(ratings, "b", "c").matrix.tolist() == [[0, 1], [0, 1]]
