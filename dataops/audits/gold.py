"""Gold (honeypot) accuracy per annotator and majority labels per item."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dataops.audits.ratings import Ratings

TieBreak = Literal["none", "random"]


@dataclass(frozen=True)
class GoldScore:
    """An annotator's accuracy on gold (honeypot) items with a Wilson interval."""

    annotator: Hashable
    n_gold: int
    n_correct: int
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    passed: bool | None


def gold_accuracy(
    ratings: Ratings,
    gold: Mapping[Hashable, Hashable],
    *,
    threshold: float = 0.9,
    confidence: float = 0.95,
) -> list[GoldScore]:
    """Accuracy per annotator on the gold items; ``passed`` is None without gold answers."""
    from statsmodels.stats.proportion import proportion_confint

    labels = ratings.categories
    given = [labels[i] for i in ratings.label_idx]
    n_gold = np.zeros(ratings.n_annotators, dtype=np.intp)
    n_correct = np.zeros(ratings.n_annotators, dtype=np.intp)
    for item_i, ann_i, label in zip(
        ratings.item_idx.tolist(), ratings.annotator_idx.tolist(), given, strict=True
    ):
        item = ratings.items[item_i]
        if item in gold:
            n_gold[ann_i] += 1
            n_correct[ann_i] += label == gold[item]
    out = []
    for i, annotator in enumerate(ratings.annotators):
        total, correct = int(n_gold[i]), int(n_correct[i])
        if total == 0:
            out.append(GoldScore(annotator, 0, 0, None, None, None, None))
            continue
        low, high = proportion_confint(correct, total, alpha=1 - confidence, method="wilson")
        accuracy = correct / total
        out.append(
            GoldScore(
                annotator, total, correct, accuracy, float(low), float(high), accuracy >= threshold
            )
        )
    return out


@dataclass(frozen=True)
class Vote:
    """The majority label of an item; ``label`` is None for an unbroken tie."""

    label: Hashable | None
    support: int
    n_ratings: int
    tied: bool

    @property
    def share(self) -> float:
        return self.support / self.n_ratings


def majority_vote(
    ratings: Ratings, *, tie_break: TieBreak = "none", seed: int = 0
) -> dict[Hashable, Vote]:
    """Most frequent label per item.

    Ties are reported as ``tied``; with ``tie_break="none"`` the item gets no label (send it
    to adjudication), with ``"random"`` one of the tied labels is drawn with a seeded
    generator, so the same call gives the same labels.
    """
    if tie_break not in ("none", "random"):
        raise ValueError(f"unknown tie_break {tie_break!r}")
    counts = ratings.value_counts
    top = counts.max(axis=1)
    is_top = counts == top[:, None]
    n_top = is_top.sum(axis=1)
    n = counts.sum(axis=1)
    choice = np.argmax(counts, axis=1)
    tied = n_top > 1
    if tie_break == "random" and tied.any():
        rng = np.random.default_rng(seed)
        pick = rng.integers(0, n_top[tied])
        ranks = np.cumsum(is_top[tied], axis=1) - 1
        choice[tied] = np.argmax(is_top[tied] & (ranks == pick[:, None]), axis=1)
    votes = {}
    for i, item in enumerate(ratings.items):
        unresolved = bool(tied[i]) and tie_break == "none"
        label = None if unresolved else ratings.categories[int(choice[i])]
        votes[item] = Vote(label, int(top[i]), int(n[i]), bool(tied[i]))
    return votes
