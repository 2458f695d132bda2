"""Out-of-sample class probabilities: a light head on fixed features, one fold held out at a time.

Confident learning is only as honest as its probabilities: a model scoring labels it was
fitted on agrees with its own mistakes. dataops cannot know what a registered model was
trained on, so it fits a logistic-regression head on the model's embeddings and scores each
label with the head that did not see it. Rows of one group (an image with several annotators'
labels) stay in one fold, so no image is judged by a head fitted on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

HEAD_C = 1.0
"""Inverse regularisation strength of the logistic-regression head (scikit-learn's default)."""


def fold_of(groups: NDArray[Any], folds: int, seed: int) -> NDArray[Any]:
    """A fold number per row: every row of a group in the same fold, groups shuffled by seed."""
    unique, inverse = np.unique(np.asarray(groups), return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(unique))
    group_fold = np.empty(len(unique), dtype=np.int64)
    group_fold[order] = np.arange(len(unique)) % folds
    return group_fold[inverse]


def out_of_sample_probs(
    features: NDArray[Any],
    labels: NDArray[Any],
    n_classes: int,
    *,
    folds: int = 5,
    seed: int = 0,
    groups: NDArray[Any] | None = None,
) -> NDArray[Any]:
    """(n, n_classes) probabilities, each row from the head fitted on the other folds."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    fold = fold_of(np.arange(len(y)) if groups is None else groups, folds, seed)
    probs = np.zeros((len(y), n_classes), dtype=np.float64)
    for k in range(folds):
        test = fold == k
        train = ~test
        if not test.any():
            continue
        seen = np.unique(y[train])
        if len(seen) < 2:
            probs[np.ix_(test, seen)] = 1.0
            continue
        # One scale for every dimension (mean squared norm 1 on the training folds): the
        # embedding's geometry is kept; per-dimension standardising would blow up near-constant
        # dimensions and let the head fit the noisy labels.
        scale = float(np.sqrt(np.mean(np.sum(x[train] ** 2, axis=1)))) or 1.0
        head = LogisticRegression(max_iter=2000, C=HEAD_C)
        head.fit(x[train] / scale, y[train])
        # A class missing from the training folds gets probability 0 in this fold.
        probs[np.ix_(test, head.classes_)] = head.predict_proba(x[test] / scale)
    return probs
