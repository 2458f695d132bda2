"""Per-item contributions to the agreement statistics, and the bootstrap that resamples them.

Percent agreement, Fleiss' kappa, Gwet's AC1, Cohen's kappa and Krippendorff's alpha are all
ratios of sums over items. Krippendorff's alpha is computed from per-item coincidence
contributions: the sum over items gives the same value as ``krippendorff.alpha`` (the tests
hold it to that), and the bootstrap resamples those contributions instead of recomputing
alpha from scratch, which is what makes 1,000 resamples of 100k items take seconds. The
``krippendorff`` package itself materialises an items x categories x categories tensor,
which is too large for many-class audits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from dataops.audits.ratings import (
    FloatArray,
    IntArray,
    KappaWeights,
    Level,
    Ratings,
    group_pairs,
)

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix


def interval_values(ratings: Ratings) -> FloatArray:
    try:
        return np.asarray(ratings.categories, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("interval level needs numeric labels") from None


def check_level(level: str) -> None:
    if level not in ("nominal", "ordinal", "interval"):
        raise ValueError(f"unknown level of measurement {level!r}")


def _unique_rows(rows: IntArray) -> tuple[IntArray, IntArray]:
    """Distinct rows and each row's position among them (np.unique(axis=0) is 30x slower)."""
    order = np.lexsort(rows.T[::-1])
    ordered = rows[order]
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    inverse = np.empty(len(rows), dtype=np.intp)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse


@dataclass(frozen=True, eq=False)
class ItemStats:
    """Items grouped into patterns with identical contributions to every statistic.

    All statistics here are ratios of sums over items, so a resample is fully described by
    how many times each pattern occurs in it.
    """

    n_categories: int
    level: str
    values: FloatArray | None
    kappa_weights: FloatArray
    pattern: IntArray
    n_patterns: int
    pair: FloatArray
    pair_agree: FloatArray
    shares: FloatArray
    coincidences: csr_matrix
    confusion: csr_matrix | None

    @classmethod
    def build(
        cls, ratings: Ratings, *, level: Level = "nominal", weights: KappaWeights = None
    ) -> ItemStats:
        from scipy import sparse

        check_level(level)
        values = interval_values(ratings) if level == "interval" else None
        k = ratings.n_categories
        counts = ratings.value_counts
        two = ratings.n_annotators == 2
        code = np.full(ratings.n_items, -1, dtype=np.intp)
        if two:
            ya, yb = ratings.matrix
            both = (ya >= 0) & (yb >= 0)
            code[both] = ya[both] * k + yb[both]
        key = np.concatenate([counts, code[:, None]], axis=1)
        patterns, pattern = _unique_rows(key)
        pc = patterns[:, :k]
        pn = pc.sum(axis=1)
        pairs = (pn * (pn - 1)).astype(np.float64)
        agree = (pc * (pc - 1)).sum(axis=1).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(pn >= 2, agree / np.where(pairs > 0, pairs, 1), 0.0)
        rows, cats = np.nonzero(pc * (pn >= 2)[:, None])
        vals = pc[rows, cats]
        i, j = group_pairs(rows, rows)
        r = rows[i]
        data = vals[i] * vals[j] - np.where(cats[i] == cats[j], vals[i], 0)
        coincidences = sparse.csr_matrix(
            (data / (pn[r] - 1), (r, cats[i] * k + cats[j])), shape=(len(pc), k * k)
        )
        idx = np.arange(k)
        dist = np.abs(idx[:, None] - idx[None, :]).astype(np.float64)
        if weights is None:
            kappa_weights = 1.0 - np.eye(k)
        elif weights == "linear":
            kappa_weights = dist
        elif weights == "quadratic":
            kappa_weights = dist**2
        else:
            raise ValueError(f"unknown kappa weights {weights!r}")
        confusion = None
        if two:
            has = patterns[:, k] >= 0
            confusion = sparse.csr_matrix(
                (np.ones(int(has.sum())), (np.flatnonzero(has), patterns[has, k])),
                shape=(len(pc), k * k),
            )
        return cls(
            n_categories=k,
            level=level,
            values=values,
            kappa_weights=kappa_weights,
            pattern=pattern,
            n_patterns=len(pc),
            pair=(pn >= 2).astype(np.float64),
            pair_agree=share,
            shares=pc / pn[:, None],
            coincidences=coincidences,
            confusion=confusion,
        )

    def counts_of(self, item_indices: IntArray) -> FloatArray:
        """resamples x patterns occurrence counts for a resamples x items index array."""
        b = item_indices.shape[0]
        flat = self.pattern[item_indices]
        flat += np.arange(0, b * self.n_patterns, self.n_patterns)[:, None]
        counts = np.bincount(flat.ravel(), minlength=b * self.n_patterns)
        return counts.reshape(b, self.n_patterns).astype(np.float64)

    def point(self) -> dict[str, FloatArray]:
        freq = np.bincount(self.pattern, minlength=self.n_patterns).astype(np.float64)
        return self.evaluate(freq[None, :])

    def evaluate(self, counts: FloatArray) -> dict[str, FloatArray]:
        """Every statistic for each row of pattern counts."""
        k = self.n_categories
        with np.errstate(divide="ignore", invalid="ignore"):
            p_obs = (counts @ self.pair_agree) / (counts @ self.pair)
            out = {"percent_agreement": p_obs}
            # Gwet (2014): prevalences are mean label shares over every rated item.
            pi = (counts @ self.shares) / counts.sum(axis=1)[:, None]
            p_exp = (pi**2).sum(axis=1)
            out["fleiss_kappa"] = (p_obs - p_exp) / (1 - p_exp)
            p_exp = (pi * (1 - pi)).sum(axis=1) / (k - 1)
            out["gwet_ac1"] = (p_obs - p_exp) / (1 - p_exp)
            o = np.asarray((self.coincidences.T @ counts.T).T).reshape(-1, k, k)
            out["krippendorff_alpha"] = alpha_from_coincidences(o, self.level, self.values)
            if self.confusion is not None:
                c = np.asarray((self.confusion.T @ counts.T).T).reshape(-1, k, k)
                total = c.sum(axis=(1, 2))
                expected = np.einsum("bi,bj->bij", c.sum(axis=2), c.sum(axis=1))
                expected /= total[:, None, None]
                w = self.kappa_weights
                out["cohen_kappa"] = 1 - (c * w).sum(axis=(1, 2)) / (expected * w).sum(axis=(1, 2))
        return out


def alpha_from_coincidences(o: FloatArray, level: str, values: FloatArray | None) -> FloatArray:
    """Krippendorff's alpha for a stack of coincidence matrices (resamples x k x k).

    alpha = 1 - (n - 1) * sum(o * d) / (n_v' d n_v). Ordinal distances are squared
    differences of mid-ranks (cumulative marginals minus half the own marginal), which is
    Krippendorff's ordinal metric written in closed form.
    """
    n_v = o.sum(axis=1)
    n = n_v.sum(axis=1)
    if level == "nominal":
        observed = n - np.trace(o, axis1=1, axis2=2)
        expected = n**2 - (n_v**2).sum(axis=1)
    else:
        if level == "ordinal":
            x = np.cumsum(n_v, axis=1) - n_v / 2
        else:
            assert values is not None
            x = np.broadcast_to(values, n_v.shape)
        d = (x[:, :, None] - x[:, None, :]) ** 2
        observed = (o * d).sum(axis=(1, 2))
        expected = np.einsum("bi,bij,bj->b", n_v, d, n_v)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha: FloatArray = 1 - (n - 1) * observed / expected
    return alpha


def resampled_statistics(
    ratings: Ratings,
    item_indices: npt.ArrayLike,
    *,
    level: Level = "nominal",
    weights: KappaWeights = None,
) -> dict[str, FloatArray]:
    """Statistics for explicit resamples of items (each row lists item positions).

    NaN marks a resample where a statistic is undefined. Exposed so a bootstrap can be
    audited against a from-scratch recomputation on the very same resamples.
    """
    stats = ItemStats.build(ratings, level=level, weights=weights)
    idx = np.atleast_2d(np.asarray(item_indices, dtype=np.intp))
    return stats.evaluate(stats.counts_of(idx))


def _resample_chunks(
    n_items: int, n_resamples: int, rng: np.random.Generator
) -> Iterator[IntArray]:
    """Item indices drawn with replacement, a few resamples at a time to bound memory."""
    per_chunk = max(1, min(n_resamples, 4_000_000 // max(n_items, 1)))
    done = 0
    while done < n_resamples:
        size = min(per_chunk, n_resamples - done)
        yield rng.integers(0, n_items, size=(size, n_items))
        done += size


def bootstrap_ci(
    ratings: Ratings,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    level: Level = "nominal",
    weights: KappaWeights = None,
) -> dict[str, Any]:
    """Percentile bootstrap confidence intervals, resampling items with replacement.

    Items (not ratings) are the resampling unit because ratings of one item are dependent.
    Resamples where a statistic is undefined are left out of its interval.
    """
    stats = ItemStats.build(ratings, level=level, weights=weights)
    return bootstrap_intervals(stats, ratings.n_items, n_resamples, confidence, seed)


def bootstrap_intervals(
    stats: ItemStats, n_items: int, n_resamples: int, confidence: float, seed: int
) -> dict[str, Any]:
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[FloatArray]] = {}
    for idx in _resample_chunks(n_items, n_resamples, rng):
        for name, vals in stats.evaluate(stats.counts_of(idx)).items():
            parts.setdefault(name, []).append(vals)
    tail = (1 - confidence) / 2 * 100
    out: dict[str, Any] = {
        "method": "percentile bootstrap over items",
        "confidence": confidence,
        "n_resamples": n_resamples,
        "seed": seed,
        "cohen_kappa": None,
    }
    for name, chunks in parts.items():
        vals = np.concatenate(chunks)
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            out[name] = None
            continue
        low, high = np.percentile(vals, [tail, 100 - tail])
        out[name] = [float(low), float(high)]
    return out
