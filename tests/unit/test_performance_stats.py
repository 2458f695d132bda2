"""The performance report's pure pieces against reference implementations: the Wilson
interval (statsmodels), Cohen's kappa from pair counts (scikit-learn), Label Studio's
lead_time as pulled, and the row order."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.proportion import proportion_confint

from dataops.labelstudio.annotations import normalise_annotation
from dataops.performance.schemas import PerformanceRow
from dataops.performance.service import kappa_from_pairs, sort_rows, wilson_interval


@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
@settings(max_examples=200, deadline=None)
def test_wilson_matches_statsmodels(case: tuple[int, int]) -> None:
    k, n = case
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((low, high), abs=1e-12)


def test_wilson_other_confidence_and_no_trials() -> None:
    assert wilson_interval(7, 9, 0.9) == pytest.approx(
        proportion_confint(7, 9, alpha=0.1, method="wilson"), abs=1e-12
    )
    with pytest.raises(ValueError, match="at least one trial"):
        wilson_interval(0, 0)


@given(
    st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from("abcd")), min_size=1, max_size=300)
)
@settings(max_examples=200, deadline=None)
def test_kappa_from_pair_counts_matches_sklearn(pairs: list[tuple[str, str]]) -> None:
    cells = [(a, b, n) for (a, b), n in Counter(pairs).items()]
    n, kappa = kappa_from_pairs(cells)
    assert n == len(pairs)
    with np.errstate(all="ignore"):
        reference = float(cohen_kappa_score([a for a, _ in pairs], [b for _, b in pairs]))
    if np.isnan(reference):
        assert kappa is None
    else:
        assert kappa == pytest.approx(reference, abs=1e-12)


def test_kappa_without_pairs_is_undefined() -> None:
    assert kappa_from_pairs([]) == (0, None)
    assert kappa_from_pairs([("cat", "cat", 5)]) == (5, None)


def _annotation(**extra: Any) -> dict[str, Any]:
    return {
        "id": 9,
        "task": 3,
        "completed_by": 2,
        "updated_at": "2026-11-02T10:00:00Z",
        "result": [
            {
                "from_name": "label",
                "to_name": "image",
                "type": "choices",
                "value": {"choices": ["cat"]},
            }
        ],
        **extra,
    }


@pytest.mark.parametrize(
    ("given_value", "kept"),
    [(12.4, 12.4), ("3.5", 3.5), (0, 0.0), (None, None), (-1, None), ("nan", None), ("x", None)],
)
def test_lead_time_is_kept_when_it_is_a_duration(given_value: Any, kept: float | None) -> None:
    extra = {} if given_value is None else {"lead_time": given_value}
    assert normalise_annotation(_annotation(**extra), "classification")["lead_time"] == kept


def _row(name: str, answers: int, kappa: float | None) -> PerformanceRow:
    zero: dict[str, Any] = {
        field: 0 for field, info in PerformanceRow.model_fields.items() if info.annotation is int
    }
    nones = {
        field: None
        for field, info in PerformanceRow.model_fields.items()
        if info.annotation == (float | None)
    }
    given = {"id": answers, "name": name, "answers": answers, "answers_per_day": answers / 7}
    return PerformanceRow(**{**zero, **nones, **given, "kappa": kappa})


def test_rows_sort_with_missing_values_last_and_names_breaking_ties() -> None:
    rows = [_row("b", 3, 0.5), _row("A", 3, None), _row("c", 9, 0.1), _row("d", 1, 0.9)]
    assert [r.name for r in sort_rows(rows, "answers", True)] == ["c", "A", "b", "d"]
    assert [r.name for r in sort_rows(rows, "answers", False)] == ["d", "A", "b", "c"]
    assert [r.name for r in sort_rows(rows, "kappa", False)] == ["c", "b", "d", "A"]
    assert [r.name for r in sort_rows(rows, "kappa", True)] == ["d", "b", "c", "A"]
    assert [r.name for r in sort_rows(rows, "name", True)] == ["d", "c", "b", "A"]
