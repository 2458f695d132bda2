"""Uncertainty scores from class probabilities; higher always means more uncertain.

Keeping one direction for every score lets selection rank them all the same way (top-K).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import entr

Floats = NDArray[np.float64]

SCORE_NAMES = ("least_confidence", "margin", "entropy")

_ROW_SUM_ATOL = 1e-3


def validate_probs(probs: NDArray[Any]) -> Floats:
    """Return ``probs`` as a float64 (n, C) array or raise ``ValueError`` saying what is wrong.

    The tolerance on row sums allows float32 softmax output over many classes.
    """
    arr = np.asarray(probs)
    if arr.ndim != 2:
        raise ValueError(f"probabilities must be a 2-D (n, classes) array, got shape {arr.shape}")
    if arr.shape[1] < 2:
        raise ValueError(f"probabilities need at least 2 classes, got {arr.shape[1]}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"probabilities must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"probabilities contain NaN or infinity (first bad row: {bad})")
    if (arr < 0).any() or (arr > 1).any():
        bad = int(np.flatnonzero(((arr < 0) | (arr > 1)).any(axis=1))[0])
        raise ValueError(f"probabilities must lie in [0, 1] (first bad row: {bad})")
    sums = arr.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1.0) > _ROW_SUM_ATOL)
    if off.size:
        row = int(off[0])
        raise ValueError(
            f"each row of probabilities must sum to 1; row {row} sums to {sums[row]:.6f} "
            f"({off.size} rows off) — pass softmax output, not logits"
        )
    return arr


def least_confidence(probs: NDArray[Any]) -> Floats:
    """1 − max p: how far the top class is from certainty."""
    return _least_confidence(validate_probs(probs))


def margin(probs: NDArray[Any]) -> Floats:
    """1 − (p₁ − p₂): close to 1 when the two best classes are nearly tied."""
    return _margin(validate_probs(probs))


def entropy(probs: NDArray[Any]) -> Floats:
    """Shannon entropy in nats (0 · log 0 = 0), which weighs the whole distribution."""
    return _entropy(validate_probs(probs))


def all_scores(probs: NDArray[Any]) -> dict[str, Floats]:
    """Every score from one validation pass, for storing alongside predictions."""
    p = validate_probs(probs)
    return {"least_confidence": _least_confidence(p), "margin": _margin(p), "entropy": _entropy(p)}


def _least_confidence(p: Floats) -> Floats:
    top: Floats = p.max(axis=1)
    return 1.0 - top


def _margin(p: Floats) -> Floats:
    top2 = np.partition(p, -2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def _entropy(p: Floats) -> Floats:
    return np.asarray(entr(p).sum(axis=1), dtype=np.float64)
