"""Exact Hamming range search over 64-bit codes with faiss: flat passes, pigeonhole buckets,
and range search built from k-NN where faiss offers only k-NN (GPU indexes).

Two codes within ``radius`` agree exactly on at least one of ``radius + 1`` disjoint bit
blocks, so each block's buckets (codes sharing that block's value) can be searched flat among
themselves. Bucket sizes are checked first: on skewed codes the search stays one flat pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

HASH_BITS = 64
DEFAULT_CHUNK = 1 << 15


def hit_rows(lims: np.ndarray) -> np.ndarray:
    """Query row of each range-search hit, from faiss's (nq + 1) offsets."""
    counts = np.diff(lims.astype(np.int64))
    return np.repeat(np.arange(counts.shape[0], dtype=np.int64), counts)


def gpu_available() -> bool:
    """True when this faiss build has CUDA support and sees a GPU."""
    import faiss

    return hasattr(faiss, "GpuIndexBinaryFlat") and faiss.get_num_gpus() > 0


def range_via_knn(
    knn_index: Any, exact_index: Any, queries: np.ndarray, radius: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Range search built from k-NN (GPU indexes have no range search).

    A query whose k-th neighbour is still inside the radius may have more neighbours than k;
    only those queries are re-run with the exact CPU range search.
    """
    k = min(k, int(knn_index.ntotal))
    dist, labels = knn_index.search(queries, k)
    inside = (dist <= radius) & (labels >= 0)
    saturated = inside[:, -1]
    rows, cols = np.nonzero(inside & ~saturated[:, None])
    q_parts = [rows.astype(np.int64)]
    l_parts = [labels[rows, cols].astype(np.int64)]
    d_parts = [dist[rows, cols].astype(np.int32)]
    redo = np.flatnonzero(saturated)
    if redo.size:
        lims, d2, l2 = exact_index.range_search(queries[redo], radius + 1)
        q_parts.append(redo[hit_rows(lims)].astype(np.int64))
        l_parts.append(l2.astype(np.int64))
        d_parts.append(d2.astype(np.int32))
    return np.concatenate(q_parts), np.concatenate(l_parts), np.concatenate(d_parts)


@dataclass(frozen=True)
class BucketCost:
    """When pigeonhole buckets beat one flat pass (measured on this machine's faiss)."""

    # Below this many query × indexed comparisons one flat pass is cheaper than bucketing.
    flat_work: int = 1 << 28
    # Bucketing is used only when its estimated cost is at most this share of the flat pass's.
    bucket_share: float = 0.8
    # What faiss spends on each query of a range search besides comparing, in comparisons:
    # a bucketed search runs every query once per block, which makes it lose below ~200k codes.
    query_overhead: int = 5000
    # Smallest chunk of queries a bucket's flat search takes at a time.
    min_chunk: int = 1024


# The cost model searches use; tests replace it to force bucketing on small inputs.
COST = BucketCost()
_MIN_BLOCKS = 4


def _blocks(radius: int) -> list[tuple[int, int]]:
    """(shift, width) of disjoint bit blocks covering the 64-bit code.

    More than ``radius`` blocks, so codes within ``radius`` agree on one; at least four,
    so a block's buckets fit a bincount.
    """
    count = max(radius + 1, _MIN_BLOCKS)
    if count > HASH_BITS:
        return []
    base, extra = divmod(HASH_BITS, count)
    widths = [base + 1] * extra + [base] * (count - extra)
    shifts = np.cumsum([0, *widths[:-1]]).tolist()
    return list(zip(shifts, widths, strict=True))


def _block_keys(words: np.ndarray, shift: int, width: int) -> np.ndarray:
    mask = np.uint64((1 << width) - 1)
    return ((words >> np.uint64(shift)) & mask).astype(np.intp)


def flat_search(
    queries: np.ndarray,
    q_pos: np.ndarray,
    base: np.ndarray,
    b_pos: np.ndarray,
    radius: int,
    earlier: bool,
    chunk: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query row, base row, distance) of hits at Hamming ≤ radius, by one flat search.

    With ``earlier``, only base rows positioned before their query count (``q_pos`` and
    ``b_pos`` ascending): each chunk of queries searches only the prefix of the base that can
    hold partners, which halves the work of an all-pairs pass.
    """
    import faiss

    rows_out: list[np.ndarray] = []
    cols_out: list[np.ndarray] = []
    dist_out: list[np.ndarray] = []
    full: Any = None
    for start in range(0, queries.shape[0], chunk):
        stop = min(start + chunk, queries.shape[0])
        limit = int(np.searchsorted(b_pos, q_pos[stop - 1])) if earlier else base.shape[0]
        if limit == 0:
            continue
        if limit == base.shape[0] and full is not None:
            index = full
        else:
            index = faiss.IndexBinaryFlat(HASH_BITS)
            index.add(base[:limit])
            if limit == base.shape[0]:
                full = index
        # faiss keeps binary range-search hits strictly below the radius.
        lims, dist, labels = index.range_search(queries[start:stop], radius + 1)
        rows = start + hit_rows(lims)
        cols = labels.astype(np.int64)
        if earlier:
            keep = b_pos[cols] < q_pos[rows]
            rows, cols, dist = rows[keep], cols[keep], dist[keep]
        rows_out.append(rows)
        cols_out.append(cols)
        dist_out.append(dist.astype(np.int32))
    if not rows_out:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int32)
    return np.concatenate(rows_out), np.concatenate(cols_out), np.concatenate(dist_out)


# Per block: (query keys, base keys, query bucket sizes, base bucket sizes).
BlockKeys = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def bucket_plan(
    queries: np.ndarray,
    base: np.ndarray,
    radius: int,
    *,
    earlier: bool,
    cost: BucketCost | None = None,
) -> list[BlockKeys] | None:
    """Each block's bucket keys, or None when one flat pass costs no more than the buckets."""
    cost = cost or COST
    nq, nb = queries.shape[0], base.shape[0]
    blocks = _blocks(radius)
    if nq == 0 or nb == 0 or not blocks or nq * nb <= cost.flat_work:
        return None
    q_words = queries.view(np.uint64).reshape(-1)
    b_words = base.view(np.uint64).reshape(-1)
    plan: list[BlockKeys] = []
    for shift, width in blocks:
        qk, bk = _block_keys(q_words, shift, width), _block_keys(b_words, shift, width)
        plan.append(
            (qk, bk, np.bincount(qk, minlength=1 << width), np.bincount(bk, minlength=1 << width))
        )
    share = 0.5 if earlier else 1.0
    work = share * sum(float(np.dot(qc.astype(np.float64), bc)) for _, _, qc, bc in plan)
    work += cost.query_overhead * nq * len(blocks)
    if work > cost.bucket_share * share * nq * nb:
        return None
    return plan


def bucketed_search(
    queries: np.ndarray,
    q_pos: np.ndarray,
    base: np.ndarray,
    b_pos: np.ndarray,
    radius: int,
    *,
    earlier: bool,
    chunk: int = DEFAULT_CHUNK,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`flat_search`, restricted to the pigeonhole buckets when that saves work.

    Each hit is found once per block the two codes agree on, so hits are de-duplicated.
    """
    cost = COST
    plan = bucket_plan(queries, base, radius, earlier=earlier, cost=cost)
    if plan is None:
        return flat_search(queries, q_pos, base, b_pos, radius, earlier, chunk)
    nb = base.shape[0]
    rows_out: list[np.ndarray] = []
    cols_out: list[np.ndarray] = []
    dist_out: list[np.ndarray] = []
    for qk, bk, qc, bc in plan:
        # Stable sorts keep positions ascending inside each bucket.
        q_order = np.argsort(qk, kind="stable")
        b_order = np.argsort(bk, kind="stable")
        q_end, b_end = np.cumsum(qc), np.cumsum(bc)
        for value in np.flatnonzero((qc > 0) & (bc > 0)).tolist():
            qm = q_order[q_end[value] - qc[value] : q_end[value]]
            bm = b_order[b_end[value] - bc[value] : b_end[value]]
            step = max(cost.min_chunk, -(-qm.shape[0] // 8)) if earlier else chunk
            rows, cols, dist = flat_search(
                queries[qm], q_pos[qm], base[bm], b_pos[bm], radius, earlier, step
            )
            rows_out.append(qm[rows])
            cols_out.append(bm[cols])
            dist_out.append(dist)
    if not rows_out:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int32)
    rows, cols = np.concatenate(rows_out), np.concatenate(cols_out)
    _, first = np.unique(rows * nb + cols, return_index=True)
    return rows[first], cols[first], np.concatenate(dist_out)[first]
