"""Confident learning on arrays: the k-fold head is out of sample and cleanlab finds flips."""

from __future__ import annotations

import numpy as np
import pytest

from dataops.quality import issues, kfold
from dataops.quality.errors import InvalidProbabilities, NotOutOfSample
from dataops.quality.run import check_request
from dataops.quality.schemas import LabelQualityRequest


def test_folds_keep_groups_together_and_balance() -> None:
    groups = np.repeat(np.arange(50), 3)
    fold = kfold.fold_of(groups, 5, seed=1)
    for g in range(50):
        assert len(set(fold[groups == g].tolist())) == 1
    assert sorted(np.bincount(fold).tolist()) == [30] * 5


def test_digits_flips_are_found() -> None:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(y), size=len(y) // 10, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 10, size=len(flipped))) % 10
    probs = kfold.out_of_sample_probs(x, noisy, 10, folds=5, seed=0)
    found = issues.find(noisy, probs)
    truth = np.zeros(len(y), dtype=bool)
    truth[flipped] = True
    tp = int((found.is_issue & truth).sum())
    assert tp / found.is_issue.sum() >= 0.75
    assert tp / truth.sum() >= 0.8
    assert (found.suggested[flipped] == y[flipped]).mean() > 0.8
    rates = issues.per_class(noisy, found.is_issue, [str(c) for c in range(10)])
    assert sum(r["issues"] for r in rates.values()) == int(found.is_issue.sum())


def test_plain_predictions_are_refused_with_the_reason() -> None:
    with pytest.raises(NotOutOfSample, match="trained on"):
        check_request(LabelQualityRequest(source="predictions"))


def test_imported_probabilities_must_be_declared_out_of_sample() -> None:
    with pytest.raises(NotOutOfSample, match="out_of_sample"):
        check_request(LabelQualityRequest(source="imported", probabilities="p.csv"))
    with pytest.raises(InvalidProbabilities, match="probabilities"):
        check_request(LabelQualityRequest(source="imported", out_of_sample=True))
    check_request(LabelQualityRequest(source="imported", probabilities="p.csv", out_of_sample=True))
