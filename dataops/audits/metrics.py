"""Inter-annotator agreement on categorical labels.

Ratings come in long form (item, annotator, label); not every annotator has to rate every
item. Items, annotators and categories are kept in a canonical order (sorted when the values
are comparable, first seen otherwise), so every result is independent of the input order.

Cohen's kappa comes from scikit-learn; Fleiss' kappa and Gwet's AC1 use every rated item
(Gwet's generalisation, in chance_corrected.py) and their bootstrap shares the per-item
contributions below. Krippendorff's alpha
is computed from per-item coincidence contributions: the sum over items gives the same value
as ``krippendorff.alpha`` (the tests hold it to that), and the bootstrap resamples those
contributions instead of recomputing alpha from scratch, which is what makes 1,000 resamples
of 100k items take seconds. The ``krippendorff`` package itself materialises an
items x categories x categories tensor, which is too large for many-class audits.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

    from dataops.audits.chance_corrected import ChanceCorrected

Level = Literal["nominal", "ordinal", "interval"]
KappaWeights = Literal["linear", "quadratic"] | None
TieBreak = Literal["none", "random"]

REQUIRED_COLUMNS = ("item", "annotator", "label")
IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]


def canonical_order(values: Iterable[Hashable]) -> tuple[Hashable, ...]:
    """Sorted unique values when they compare, first-seen order otherwise."""
    unique = list(dict.fromkeys(values))
    try:
        return tuple(sorted(unique))  # type: ignore[type-var]
    except TypeError:
        return tuple(unique)


def _as_float(value: float | np.floating[Any]) -> float | None:
    """JSON-friendly float: undefined statistics become None."""
    value = float(value)
    return value if math.isfinite(value) else None


def group_pairs(left_keys: npt.ArrayLike, right_keys: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    """Every (i, j) with ``left_keys[i] == right_keys[j]``, without a Python loop.

    Memory is proportional to the number of pairs, not to len(left) * len(right).
    """
    left = np.asarray(left_keys)
    right = np.asarray(right_keys)
    lo = np.argsort(left, kind="stable")
    ro = np.argsort(right, kind="stable")
    sorted_right = right[ro]
    start = np.searchsorted(sorted_right, left[lo], side="left")
    count = np.searchsorted(sorted_right, left[lo], side="right") - start
    total = int(count.sum())
    offsets = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    return np.repeat(lo, count), ro[np.repeat(start, count) + offsets]


@dataclass(frozen=True, eq=False)
class Ratings:
    """Long-form ratings encoded as integer indices into items, annotators and categories."""

    items: tuple[Hashable, ...]
    annotators: tuple[Hashable, ...]
    categories: tuple[Hashable, ...]
    item_idx: IntArray
    annotator_idx: IntArray
    label_idx: IntArray

    @classmethod
    def from_records(
        cls,
        records: Iterable[tuple[Hashable, Hashable, Hashable]],
        *,
        categories: Sequence[Hashable] | None = None,
    ) -> Ratings:
        """Build from (item, annotator, label) tuples.

        ``categories`` fixes the order of the labels (needed for ordinal data whose natural
        sort is wrong, e.g. "low" < "mid" < "high"); labels outside it are an error.
        """
        rows = list(records)
        items = canonical_order(r[0] for r in rows)
        annotators = canonical_order(r[1] for r in rows)
        if categories is None:
            cats = canonical_order(r[2] for r in rows)
        else:
            cats = tuple(categories)
            if len(set(cats)) != len(cats):
                raise ValueError("categories contain duplicates")
        item_pos = {v: i for i, v in enumerate(items)}
        ann_pos = {v: i for i, v in enumerate(annotators)}
        cat_pos = {v: i for i, v in enumerate(cats)}
        unknown = {r[2] for r in rows} - cat_pos.keys()
        if unknown:
            raise ValueError(f"labels not in categories: {sorted(map(repr, unknown))}")
        item_idx = np.fromiter((item_pos[r[0]] for r in rows), np.intp, len(rows))
        annotator_idx = np.fromiter((ann_pos[r[1]] for r in rows), np.intp, len(rows))
        label_idx = np.fromiter((cat_pos[r[2]] for r in rows), np.intp, len(rows))
        key = item_idx * max(len(annotators), 1) + annotator_idx
        uniq, counts = np.unique(key, return_counts=True)
        if (counts > 1).any():
            first = int(uniq[np.argmax(counts > 1)])
            item, ann = items[first // len(annotators)], annotators[first % len(annotators)]
            raise ValueError(f"annotator {ann!r} rated item {item!r} more than once")
        return cls(items, annotators, cats, item_idx, annotator_idx, label_idx)

    def __len__(self) -> int:
        return len(self.label_idx)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_annotators(self) -> int:
        return len(self.annotators)

    @property
    def n_categories(self) -> int:
        return len(self.categories)

    @cached_property
    def value_counts(self) -> IntArray:
        """items x categories: how many annotators gave each label to each item."""
        flat = self.item_idx * self.n_categories + self.label_idx
        counts = np.bincount(flat, minlength=self.n_items * self.n_categories)
        return counts.reshape(self.n_items, self.n_categories).astype(np.intp)

    @cached_property
    def matrix(self) -> IntArray:
        """annotators x items label indices, -1 where the annotator did not rate the item."""
        out = np.full((self.n_annotators, self.n_items), -1, dtype=np.intp)
        out[self.annotator_idx, self.item_idx] = self.label_idx
        return out

    def annotator_position(self, annotator: Hashable) -> int:
        try:
            return self.annotators.index(annotator)
        except ValueError:
            raise ValueError(f"unknown annotator {annotator!r}") from None


def read_ratings_csv(
    path: str | Path,
    *,
    numeric: bool = False,
    categories: Sequence[Hashable] | None = None,
) -> Ratings:
    """Read ratings from a CSV with columns item, annotator, label (extra columns ignored).

    Errors name the line of the file (the header is line 1) and the column, so a bad export
    can be fixed by hand. ``numeric`` parses labels as numbers (interval-level data).
    """
    path = Path(path)
    records: list[tuple[Hashable, Hashable, Hashable]] = []
    seen: dict[tuple[str, str], int] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, restkey="\0extra")
        header = [name.strip() for name in (reader.fieldnames or [])]
        if not header:
            raise ValueError(f"{path}: empty file; expected a header item,annotator,label")
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}, line 1: missing column(s) {', '.join(missing)}")
        reader.fieldnames = header
        for row in reader:
            line = reader.line_num
            if row.get("\0extra"):
                raise ValueError(f"{path}, line {line}: more fields than the header has")
            values: dict[str, str] = {}
            for column in REQUIRED_COLUMNS:
                value = (row.get(column) or "").strip()
                if not value:
                    raise ValueError(f"{path}, line {line}, column {column!r}: empty value")
                values[column] = value
            label: Hashable = values["label"]
            if numeric:
                try:
                    label = float(values["label"])
                except ValueError:
                    raise ValueError(
                        f"{path}, line {line}, column 'label': {values['label']!r} is not a number"
                    ) from None
                if not math.isfinite(label):
                    raise ValueError(f"{path}, line {line}, column 'label': not a finite number")
            key = (values["item"], values["annotator"])
            if key in seen:
                raise ValueError(
                    f"{path}, line {line}, column 'annotator': {key[1]!r} already rated item "
                    f"{key[0]!r} on line {seen[key]}"
                )
            seen[key] = line
            records.append((values["item"], values["annotator"], label))
    if not records:
        raise ValueError(f"{path}: no ratings")
    return Ratings.from_records(records, categories=categories)


# --- single statistics -------------------------------------------------------------------


def _interval_values(ratings: Ratings) -> FloatArray:
    try:
        return np.asarray(ratings.categories, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("interval level needs numeric labels") from None


def _check_level(level: str) -> None:
    if level not in ("nominal", "ordinal", "interval"):
        raise ValueError(f"unknown level of measurement {level!r}")


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
    return _as_float(value)


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
    return _as_float(_ItemStats.build(ratings).point()["percent_agreement"][0])


def krippendorff_alpha(ratings: Ratings, *, level: Level = "nominal") -> float | None:
    """Krippendorff's alpha with missing ratings allowed (None when undefined)."""
    return _as_float(_ItemStats.build(ratings, level=level).point()["krippendorff_alpha"][0])


# --- per-item contributions and the bootstrap ----------------------------------------------


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
class _ItemStats:
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
    ) -> _ItemStats:
        from scipy import sparse

        _check_level(level)
        values = _interval_values(ratings) if level == "interval" else None
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
            out["krippendorff_alpha"] = _alpha_from_coincidences(o, self.level, self.values)
            if self.confusion is not None:
                c = np.asarray((self.confusion.T @ counts.T).T).reshape(-1, k, k)
                total = c.sum(axis=(1, 2))
                expected = np.einsum("bi,bj->bij", c.sum(axis=2), c.sum(axis=1))
                expected /= total[:, None, None]
                w = self.kappa_weights
                out["cohen_kappa"] = 1 - (c * w).sum(axis=(1, 2)) / (expected * w).sum(axis=(1, 2))
        return out


def _alpha_from_coincidences(o: FloatArray, level: str, values: FloatArray | None) -> FloatArray:
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
        return 1 - (n - 1) * observed / expected


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
    stats = _ItemStats.build(ratings, level=level, weights=weights)
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
    stats = _ItemStats.build(ratings, level=level, weights=weights)
    return _bootstrap(stats, ratings.n_items, n_resamples, confidence, seed)


def _bootstrap(
    stats: _ItemStats, n_items: int, n_resamples: int, confidence: float, seed: int
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

    stats = _ItemStats.build(ratings, level=level, weights=weights)
    point = stats.point()
    fleiss = chance_corrected(ratings.value_counts, "fleiss_kappa", confidence=confidence)
    ac1 = chance_corrected(ratings.value_counts, "gwet_ac1", confidence=confidence)
    out: dict[str, Any] = {
        "n_items": ratings.n_items,
        "n_items_paired": fleiss.n_items_paired,
        "n_annotators": ratings.n_annotators,
        "percent_agreement": _as_float(point["percent_agreement"][0]),
        "cohen_kappa": (
            cohen_kappa(ratings, weights=weights) if ratings.n_annotators == 2 else None
        ),
        "fleiss_kappa": fleiss.value,
        "gwet_ac1": ac1.value,
        "krippendorff_alpha": _as_float(point["krippendorff_alpha"][0]),
        "standard_errors": {
            "method": f"Gwet linearisation, {confidence:.0%} t interval",
            "fleiss_kappa": {"se": fleiss.standard_error, "ci": fleiss.as_dict()["ci"]},
            "gwet_ac1": {"se": ac1.standard_error, "ci": ac1.as_dict()["ci"]},
        },
    }
    if weights is not None:
        out["weights"] = weights
        out["weighted_kappa"] = weighted_kappa(ratings, weights)
    if n_resamples > 0:
        out["ci"] = _bootstrap(stats, ratings.n_items, n_resamples, confidence, seed)
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
        alpha = _alpha_from_coincidences(o[None], "nominal", None)[0]
        rows.append(
            {
                "label": category,
                "n_ratings": int(counts[:, k].sum()),
                "specific_agreement": float(num[k] / den[k]) if den[k] > 0 else None,
                "alpha": _as_float(alpha),
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
