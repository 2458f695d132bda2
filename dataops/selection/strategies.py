"""Active-learning selection strategies: pure functions from model outputs to row indices.

Every strategy returns indices into the rows it was given, in pick order, and is deterministic
for a seed. Equal scores are ordered by a seeded permutation of the rows, so ties neither
favour low row numbers (often the oldest images) nor change between runs. ``random`` is that
tie-break order itself: a strategy whose scores are all equal reduces to ``random`` with the
same seed. The named strategies and their array entry point ``select`` are in
``registry``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dataops.scoring import uncertainty

HARD_NEGATIVE_MODES = ("labeled", "unlabeled")
UNLABELED = -1
"""Label value for rows without a label in ``labels`` arrays."""

Rows = NDArray[np.int64]
"""Row indices into the arrays a strategy was given."""
Floats = NDArray[np.float64]

Inner = Callable[[Rows, int], Rows]
"""A per-stratum strategy: (row indices of the stratum, count) -> chosen row indices."""

_EMPTY: Rows = np.empty(0, dtype=np.int64)


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    return int(k)


def _rank(scores: Floats, seed: int) -> Rows:
    tiebreak = np.random.default_rng(seed).permutation(len(scores))
    order: Rows = np.lexsort((tiebreak, -scores)).astype(np.int64)
    return order


def top_k(scores: NDArray[Any], k: int, seed: int = 0) -> Rows:
    """Rows with the k highest scores, highest first; ties in seeded-permutation order."""
    k = check_k(k)
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("scores contain NaN or infinity")
    return _rank(arr, seed)[:k]


def random(n: int, k: int, seed: int = 0) -> Rows:
    """The baseline every other strategy is measured against: k rows uniformly at random."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    return top_k(np.zeros(int(n)), k, seed)


def least_confidence(probs: NDArray[Any], k: int, seed: int = 0) -> Rows:
    """Rows whose top class is least certain."""
    return top_k(uncertainty.least_confidence(probs), k, seed)


def margin(probs: NDArray[Any], k: int, seed: int = 0) -> Rows:
    """Rows whose two best classes are closest."""
    return top_k(uncertainty.margin(probs), k, seed)


def entropy(probs: NDArray[Any], k: int, seed: int = 0) -> Rows:
    """Rows with the most spread-out predicted distribution."""
    return top_k(uncertainty.entropy(probs), k, seed)


def _as_matrix(values: NDArray[Any], name: str) -> Floats:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, dims) array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contain NaN or infinity")
    return arr


def _sq_dist_to(x: Floats, sq_norms: Floats, row: int) -> Floats:
    d2 = x @ (-2.0 * x[row])
    d2 += sq_norms
    d2 += sq_norms[row]
    clipped: Floats = np.maximum(d2, 0.0, out=d2)
    return clipped


def kcenter(
    embeddings: NDArray[Any],
    k: int,
    *,
    labeled_embeddings: NDArray[Any] | None = None,
    seed: int = 0,
) -> Rows:
    """Greedy k-center (core-set): each pick is the row farthest from everything chosen so far.

    Starts from the already-labeled set when given, so the batch fills the gaps the labeled data
    leaves; otherwise the first pick is seeded. Greedy is within a factor 2 of the optimal
    covering radius. Memory stays O(n): one matrix-vector product per pick, and the distances
    to the labeled set are computed in chunks.
    """
    k = check_k(k)
    x = _as_matrix(embeddings, "embeddings")
    n = len(x)
    k = min(k, n)
    if k == 0:
        return _EMPTY.copy()
    tiebreak = np.random.default_rng(seed).permutation(n)
    sq_norms = np.einsum("ij,ij->i", x, x)
    picks: list[int] = []
    if labeled_embeddings is not None and len(labeled_embeddings) > 0:
        labeled = _as_matrix(labeled_embeddings, "labeled_embeddings")
        if labeled.shape[1] != x.shape[1]:
            raise ValueError(
                f"labeled_embeddings have {labeled.shape[1]} dims but embeddings have "
                f"{x.shape[1]}; both must come from the same model version"
            )
        from sklearn.metrics import pairwise_distances_argmin_min

        _, dist = pairwise_distances_argmin_min(x, labeled)
        min_d2 = np.square(dist)
    else:
        first = int(np.argmin(tiebreak))
        picks.append(first)
        min_d2 = _sq_dist_to(x, sq_norms, first)
        min_d2[first] = -1.0
    while len(picks) < k:
        candidates = np.flatnonzero(min_d2 == min_d2.max())
        best = int(candidates[np.argmin(tiebreak[candidates])])
        picks.append(best)
        np.minimum(min_d2, _sq_dist_to(x, sq_norms, best), out=min_d2)
        min_d2[best] = -1.0
    return np.asarray(picks, dtype=np.int64)


def cluster_ids(
    embeddings: NDArray[Any],
    n_clusters: int,
    *,
    seed: int = 0,
    hac_max_points: int = 5000,
) -> Rows:
    """Cluster label per row, as cluster-margin uses it.

    Average-linkage agglomerative clustering (the paper's choice) needs O(n²) memory, so above
    ``hac_max_points`` rows MiniBatchKMeans stands in: also compact clusters, in linear memory.
    """
    x = _as_matrix(embeddings, "embeddings")
    n = len(x)
    n_clusters = max(1, min(int(n_clusters), n))
    if n_clusters == 1:
        return np.zeros(n, dtype=np.int64)
    if n <= hac_max_points:
        from sklearn.cluster import AgglomerativeClustering

        hac = AgglomerativeClustering(n_clusters=n_clusters, linkage="average")
        return np.asarray(hac.fit_predict(x), dtype=np.int64)
    from sklearn.cluster import MiniBatchKMeans

    km = MiniBatchKMeans(n_clusters=n_clusters, random_state=seed)
    return np.asarray(km.fit_predict(x), dtype=np.int64)


def round_robin(rows: NDArray[Any], clusters: NDArray[Any], k: int, seed: int = 0) -> Rows:
    """Up to k of ``rows``: one per cluster in turn, smallest cluster first, random within one.

    Cluster size counts only the given rows; equal sizes are ordered by a seeded permutation.
    """
    k = check_k(k)
    rows = np.asarray(rows, dtype=np.int64)
    clusters = np.asarray(clusters)
    if rows.shape != clusters.shape or rows.ndim != 1:
        raise ValueError("rows and clusters must be 1-D arrays of the same length")
    if len(rows) == 0:
        return _EMPTY.copy()
    rng = np.random.default_rng(seed)
    shuffle = rng.permutation(len(rows))
    rows, clusters = rows[shuffle], clusters[shuffle]
    _, inverse, sizes = np.unique(clusters, return_inverse=True, return_counts=True)
    cluster_rank = np.empty(len(sizes), dtype=np.int64)
    cluster_rank[np.lexsort((rng.permutation(len(sizes)), sizes))] = np.arange(len(sizes))
    by_cluster = np.argsort(inverse, kind="stable")
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    within = np.empty(len(rows), dtype=np.int64)
    within[by_cluster] = np.arange(len(rows)) - np.repeat(starts, sizes)
    order = np.lexsort((cluster_rank[inverse], within))
    picked: Rows = rows[order[:k]]
    return picked


def cluster_margin(
    probs: NDArray[Any],
    embeddings: NDArray[Any],
    k: int,
    *,
    seed: int = 0,
    margin_pool: float = 10.0,
    n_clusters: int | None = None,
    hac_max_points: int = 5000,
) -> Rows:
    """Cluster-Margin (Citovsky et al. 2021): uncertain, and spread across clusters.

    Takes the ``margin_pool`` × k rows with the smallest margin, then picks from their
    embedding clusters round-robin, smallest cluster first, so one dense region of confusing
    images cannot fill the batch. ``n_clusters`` defaults to k.
    """
    k = check_k(k)
    p = uncertainty.validate_probs(probs)
    x = _as_matrix(embeddings, "embeddings")
    if len(p) != len(x):
        raise ValueError(f"probs have {len(p)} rows but embeddings have {len(x)}")
    if margin_pool < 1:
        raise ValueError(f"margin_pool must be at least 1, got {margin_pool}")
    n = len(p)
    k = min(k, n)
    if k == 0:
        return _EMPTY.copy()
    clusters = cluster_ids(
        x, n_clusters if n_clusters is not None else k, seed=seed, hac_max_points=hac_max_points
    )
    pool = top_k(uncertainty.margin(p), min(n, math.ceil(margin_pool * k)), seed)
    return round_robin(pool, clusters[pool], k, seed)


def _as_labels(labels: NDArray[Any], n: int) -> Rows:
    arr = np.asarray(labels)
    if arr.shape != (n,):
        raise ValueError(f"labels must be 1-D with one entry per row ({n}), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices (−1 = unlabeled), got {arr.dtype}")
    if (arr < UNLABELED).any():
        raise ValueError("labels must be class indices or −1 for unlabeled rows")
    return arr.astype(np.int64, copy=False)


def hard_negative_rows(n: int, class_index: int, mode: str, labels: NDArray[Any] | None) -> Rows:
    if mode not in HARD_NEGATIVE_MODES:
        raise ValueError(f"hard_negative mode must be one of {HARD_NEGATIVE_MODES}, got {mode!r}")
    if mode == "labeled":
        if labels is None:
            raise ValueError(
                "hard_negative mode 'labeled' needs labels: the current label of each row"
            )
        lab = _as_labels(labels, n)
        return np.flatnonzero((lab != UNLABELED) & (lab != class_index))
    if labels is None:
        return np.arange(n, dtype=np.int64)
    return np.flatnonzero(_as_labels(labels, n) == UNLABELED)


def hard_negative(
    probs: NDArray[Any],
    k: int,
    class_index: int,
    *,
    mode: str,
    labels: NDArray[Any] | None = None,
    seed: int = 0,
) -> Rows:
    """Rows the model rates highest for ``class_index`` among rows that should not be it.

    ``labeled``: rows labeled as another class (label errors or the model's worst confusions);
    ``unlabeled``: rows without a label (−1 in ``labels``; all rows when ``labels`` is None),
    whose top-scored members are the likeliest false positives to check.
    """
    k = check_k(k)
    p = uncertainty.validate_probs(probs)
    if isinstance(class_index, bool) or not 0 <= class_index < p.shape[1]:
        raise ValueError(f"class_index must be in [0, {p.shape[1]}), got {class_index!r}")
    rows = hard_negative_rows(len(p), class_index, mode, labels)
    return rows[top_k(p[rows, class_index], k, seed)]


def allocate(sizes: NDArray[Any], k: int) -> Rows:
    """Split k across strata in proportion to their sizes (largest remainder method).

    Every non-empty stratum gets at least one when k allows, taken from the strata most above
    their exact quota; no stratum gets more than it holds.
    """
    k = check_k(k)
    sz = np.asarray(sizes, dtype=np.int64)
    if sz.ndim != 1 or (sz < 0).any():
        raise ValueError("sizes must be a 1-D array of non-negative counts")
    total = int(sz.sum())
    if k >= total:
        return sz.copy()
    quota = k * sz / total
    alloc = np.floor(quota).astype(np.int64)
    remainder = quota - alloc
    extra = k - int(alloc.sum())
    order = np.lexsort((np.arange(len(sz)), -sz, -remainder))
    alloc[order[:extra]] += 1
    nonempty = sz > 0
    if k >= int(nonempty.sum()):
        for stratum in np.flatnonzero(nonempty & (alloc == 0)):
            surplus = np.where(alloc > 1, alloc - quota, -np.inf)
            donor = int(np.argmax(surplus))
            alloc[donor] -= 1
            alloc[stratum] += 1
    return alloc


def stratified(strata: NDArray[Any], k: int, inner: Inner) -> Rows:
    """Run ``inner`` inside each stratum with a share of k proportional to the stratum's size.

    Keeps a batch representative of slices (site, device, locale) that a global ranking would
    skew towards whichever slice the model finds hardest. Strata come in sorted order.
    """
    k = check_k(k)
    arr = np.asarray(strata)
    if arr.ndim != 1:
        raise ValueError(f"strata must be 1-D with one value per row, got shape {arr.shape}")
    try:
        _, inverse, sizes = np.unique(arr, return_inverse=True, return_counts=True)
    except TypeError as exc:
        raise ValueError(
            f"strata values must be mutually comparable (all str or all int): {exc}"
        ) from exc
    picks = [
        np.asarray(inner(np.flatnonzero(inverse == s), int(share)), dtype=np.int64)
        for s, share in enumerate(allocate(sizes, k))
        if share > 0
    ]
    return np.concatenate(picks) if picks else _EMPTY.copy()
