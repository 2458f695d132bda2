"""Confident learning over out-of-sample probabilities (cleanlab), as plain arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Findings:
    """Per row: label-quality score (self-confidence, 0..1), issue flag, suggested class."""

    quality: NDArray[Any]
    is_issue: NDArray[Any]
    suggested: NDArray[Any]


def find(labels: NDArray[Any], probs: NDArray[Any]) -> Findings:
    """cleanlab's ``find_label_issues`` (prune by noise rate) and label-quality scores."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    p = np.clip(p, 1e-12, None)
    p = p / p.sum(axis=1, keepdims=True)
    quality = get_label_quality_scores(y, p)
    present = np.unique(y)
    flags: NDArray[Any]
    if len(present) < 2:
        flags = np.zeros(len(y), dtype=bool)
    else:
        flags = np.asarray(find_label_issues(y, p, filter_by="prune_by_noise_rate"), dtype=bool)
    return Findings(quality=np.asarray(quality), is_issue=flags, suggested=p.argmax(axis=1))


def per_class(
    labels: NDArray[Any], flags: NDArray[Any], classes: list[str]
) -> dict[str, dict[str, float]]:
    """The estimated label-error rate of each given class: flagged / labeled."""
    out: dict[str, dict[str, float]] = {}
    for i, name in enumerate(classes):
        given = labels == i
        n = int(given.sum())
        flagged = int((flags & given).sum())
        out[name] = {"labels": n, "issues": flagged, "error_rate": flagged / n if n else 0.0}
    return out
