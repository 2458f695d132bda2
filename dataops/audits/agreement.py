"""Inter-annotator agreement on categorical labels: single statistics and their breakdowns.

Cohen's kappa comes from scikit-learn; Fleiss' kappa and Gwet's AC1 use every rated item
(Gwet's generalisation, in chance_corrected.py); percent agreement and Krippendorff's alpha
come from the per-item contributions in intervals.py, which their bootstrap shares.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from dataops.audits.intervals import ItemStats, alpha_from_coincidences, bootstrap_intervals
from dataops.audits.ratings import (
    FloatArray,
    IntArray,
    KappaWeights,
    Level,
    Ratings,
    as_float,
    canonical_order,
)

if TYPE_CHECKING:
    from dataops.audits.chance_corrected import ChanceCorrected


@contextmanager
def _quiet_undefined() -> Iterator[None]:
    """Undefined kappas come back as NaN and are reported as None; no warning needed."""
    from sklearn.exceptions import UndefinedMetricWarning

    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        yield


def _pair_labels(ratings: Ratings, a: Hashable, b: Hashable) -> tuple[IntArray, IntArray]:
    """Label indices of two annotators on the items both rated."""
    m = ratings.matrix
    ya, yb = m[ratings.annotator_position(a)], m[ratings.annotator_position(b)]
    both = (ya >= 0) & (yb >= 0)
    return ya[both], yb[both]


def cohen_kappa(
    ratings: Ratings,
    annotator_a: Hashable | None = None,
    annotator_b: Hashable | None = None,
    *,
    weights: KappaWeights = None,
) -> float | None:
    """Cohen's kappa between two annotators on the items both rated (None when undefined).

    Without names, the ratings must have exactly two annotators. Weighted kappa uses the
    category order, so pass ``categories`` when the labels are ordinal strings.
    """
    from sklearn.metrics import cohen_kappa_score

    if annotator_a is None or annotator_b is None:
        if ratings.n_annotators != 2:
            raise ValueError("name two annotators, or pass ratings with exactly two")
        annotator_a, annotator_b = ratings.annotators
    ya, yb = _pair_labels(ratings, annotator_a, annotator_b)
    if len(ya) == 0:
        return None
    with _quiet_undefined():
        value = cohen_kappa_score(ya, yb, labels=np.arange(ratings.n_categories), weights=weights)
    return as_float(value)


def fleiss_kappa(ratings: Ratings) -> float | None:
    """Fleiss' kappa on every rated item, any number of raters per item (Gwet 2014)."""
    from dataops.audits.chance_corrected import chance_corrected

    return chance_corrected(ratings.value_counts, "fleiss_kappa").value


def gwet_ac1(ratings: Ratings, *, confidence: float = 0.95) -> ChanceCorrected:
    """Gwet's AC1 with its standard error and t interval (Gwet 2008, 2014).

    AC1 stays near the observed agreement when one class dominates, where kappa collapses
    (the kappa paradox). Chance agreement counts every category in ``ratings.categories``.
    """
    from dataops.audits.chance_corrected import chance_corrected

    return chance_corrected(ratings.value_counts, "gwet_ac1", confidence=confidence)


def weighted_kappa(ratings: Ratings, weights: Literal["linear", "quadratic"]) -> float | None:
    """Weighted Cohen's kappa; the mean over annotator pairs when there are more than two.

    Categories are ordinal in their ``ratings.categories`` order. Pairs that share no item
    or whose kappa is undefined are left out of the mean.
    """
    if weights not in ("linear", "quadratic"):
        raise ValueError(f"unknown kappa weights {weights!r}: use linear or quadratic")
    kappa = pairwise_kappa(ratings, weights=weights).kappa
    upper = kappa[np.triu_indices(ratings.n_annotators, k=1)]
    upper = upper[np.isfinite(upper)]
    return float(upper.mean()) if upper.size else None


def percent_agreement(ratings: Ratings) -> float | None:
    """Mean over items rated at least twice of the share of rater pairs that agree."""
    return as_float(ItemStats.build(ratings).point()["percent_agreement"][0])


def krippendorff_alpha(ratings: Ratings, *, level: Level = "nominal") -> float | None:
    """Krippendorff's alpha with missing ratings allowed (None when undefined)."""
    return as_float(ItemStats.build(ratings, level=level).point()["krippendorff_alpha"][0])


def _listed(interval: tuple[float, float] | None) -> list[float] | None:
    return list(interval) if interval else None


def agreement_summary(
    ratings: Ratings,
    *,
    level: Level = "nominal",
    weights: KappaWeights = None,
    n_resamples: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """The `dataops audit agreement` document; a "ci" block is added when n_resamples > 0.

    Fleiss' kappa and AC1 use every item: ``n_items`` for the category prevalences and
    ``n_items_paired`` (rated at least twice) for the observed agreement. ``weighted_kappa``
    is present when ``weights`` is given.
    """
    from dataops.audits.chance_corrected import chance_corrected

    stats = ItemStats.build(ratings, level=level, weights=weights)
    point = stats.point()
    fleiss = chance_corrected(ratings.value_counts, "fleiss_kappa", confidence=confidence)
    ac1 = chance_corrected(ratings.value_counts, "gwet_ac1", confidence=confidence)
    out: dict[str, Any] = {
        "n_items": ratings.n_items,
        "n_items_paired": fleiss.n_items_paired,
        "n_annotators": ratings.n_annotators,
        "percent_agreement": as_float(point["percent_agreement"][0]),
        "cohen_kappa": (
            cohen_kappa(ratings, weights=weights) if ratings.n_annotators == 2 else None
        ),
        "fleiss_kappa": fleiss.value,
        "gwet_ac1": ac1.value,
        "krippendorff_alpha": as_float(point["krippendorff_alpha"][0]),
        "standard_errors": {
            "method": f"Gwet linearisation, {confidence:.0%} t interval",
            "fleiss_kappa": {"se": fleiss.standard_error, "ci": _listed(fleiss.ci)},
            "gwet_ac1": {"se": ac1.standard_error, "ci": _listed(ac1.ci)},
        },
    }
    if weights is not None:
        out["weights"] = weights
        out["weighted_kappa"] = weighted_kappa(ratings, weights)
    if n_resamples > 0:
        out["ci"] = bootstrap_intervals(stats, ratings.n_items, n_resamples, confidence, seed)
    return out


# --- breakdowns -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PairwiseKappa:
    """Annotator x annotator Cohen's kappa (NaN where two annotators share no item)."""

    annotators: tuple[Hashable, ...]
    kappa: FloatArray
    shared_items: IntArray


def pairwise_kappa(ratings: Ratings, *, weights: KappaWeights = None) -> PairwiseKappa:
    """Cohen's kappa for every pair of annotators on the items they both rated."""
    from sklearn.metrics import cohen_kappa_score

    a = ratings.n_annotators
    kappa = np.eye(a)
    shared = np.zeros((a, a), dtype=np.intp)
    m = ratings.matrix
    rated = m >= 0
    for i in range(a):
        shared[i, i] = int(rated[i].sum())
        for j in range(i + 1, a):
            both = rated[i] & rated[j]
            shared[i, j] = shared[j, i] = int(both.sum())
            value = np.nan
            if both.any():
                with _quiet_undefined():
                    value = cohen_kappa_score(
                        m[i, both],
                        m[j, both],
                        labels=np.arange(ratings.n_categories),
                        weights=weights,
                    )
            kappa[i, j] = kappa[j, i] = value
    return PairwiseKappa(ratings.annotators, kappa, shared)


def per_annotator_agreement(
    ratings: Ratings, *, weights: KappaWeights = None
) -> list[dict[str, Any]]:
    """How often each annotator agrees with the others on shared items, and mean kappa."""
    counts = ratings.value_counts
    n = counts.sum(axis=1)
    agree_pairs = counts[ratings.item_idx, ratings.label_idx] - 1
    other = n[ratings.item_idx] - 1
    a = ratings.n_annotators
    agree = np.bincount(ratings.annotator_idx, weights=agree_pairs, minlength=a)
    pairs = np.bincount(ratings.annotator_idx, weights=other, minlength=a)
    shared = np.bincount(ratings.annotator_idx, weights=other > 0, minlength=a)
    rated = np.bincount(ratings.annotator_idx, minlength=a)
    kappa = pairwise_kappa(ratings, weights=weights).kappa.copy()
    np.fill_diagonal(kappa, np.nan)
    rows = []
    for i, annotator in enumerate(ratings.annotators):
        others = kappa[i][np.isfinite(kappa[i])]
        rows.append(
            {
                "annotator": annotator,
                "n_items": int(rated[i]),
                "n_shared_items": int(shared[i]),
                "agreement": float(agree[i] / pairs[i]) if pairs[i] > 0 else None,
                "mean_kappa": float(others.mean()) if others.size else None,
            }
        )
    return rows


def per_class_agreement(ratings: Ratings) -> list[dict[str, Any]]:
    """Per category: specific agreement and one-vs-rest Krippendorff's alpha.

    Specific agreement for category k is the chance that, given one rater of a pair chose k,
    the other did too: sum c_k (c_k - 1) / sum c_k (n - 1) over items rated at least twice.
    """
    counts = ratings.value_counts
    n = counts.sum(axis=1)
    keep = n >= 2
    c = counts[keep]
    rest = n[keep][:, None] - c
    num = (c * (c - 1)).sum(axis=0)
    den = (c * rest).sum(axis=0) + num
    rows = []
    for k, category in enumerate(ratings.categories):
        binary = np.stack([c[:, k], rest[:, k]], axis=1)
        scaled = binary / (n[keep][:, None] - 1)
        o = scaled.T @ binary - np.diag(scaled.sum(axis=0))
        alpha = alpha_from_coincidences(o[None], "nominal", None)[0]
        rows.append(
            {
                "label": category,
                "n_ratings": int(counts[:, k].sum()),
                "specific_agreement": float(num[k] / den[k]) if den[k] > 0 else None,
                "alpha": as_float(alpha),
            }
        )
    return rows


@dataclass(frozen=True)
class Confusion:
    """Rows: the first rater (or the reference); columns: the second rater."""

    labels: tuple[Hashable, ...]
    matrix: IntArray


def confusion_matrix(ratings: Ratings, annotator_a: Hashable, annotator_b: Hashable) -> Confusion:
    """Label confusion between two annotators on the items both rated."""
    from sklearn.metrics import confusion_matrix as sk_confusion

    ya, yb = _pair_labels(ratings, annotator_a, annotator_b)
    labels = np.arange(ratings.n_categories)
    if len(ya) == 0:  # sklearn refuses empty input; two annotators may share no item
        return Confusion(ratings.categories, np.zeros((len(labels), len(labels)), dtype=np.int64))
    return Confusion(ratings.categories, sk_confusion(ya, yb, labels=labels))


def confusion_vs_reference(
    ratings: Ratings, reference: Mapping[Hashable, Hashable], annotator: Hashable | None = None
) -> Confusion:
    """Reference label x given label over the referenced items (one annotator or all)."""
    from sklearn.metrics import confusion_matrix as sk_confusion

    labels = canonical_order([*ratings.categories, *reference.values()])
    pos = {v: i for i, v in enumerate(labels)}
    ref = np.array([pos.get(reference[it], -1) if it in reference else -1 for it in ratings.items])
    keep = ref[ratings.item_idx] >= 0
    if annotator is not None:
        keep &= ratings.annotator_idx == ratings.annotator_position(annotator)
    cat_to_label = np.array([pos[c] for c in ratings.categories], dtype=np.intp)
    y_true = ref[ratings.item_idx[keep]]
    y_pred = cat_to_label[ratings.label_idx[keep]]
    return Confusion(labels, sk_confusion(y_true, y_pred, labels=np.arange(len(labels))))
