"""From candidate hash pairs to duplicate groups, with an anti-chaining guard.

Connected components alone chain: A~B and B~C puts A and C together even when they are
different pictures (a slow pan, a series of near-identical product shots). So each component
gets a representative (the caller's ranking: largest resolution, then oldest), and only
members that match the representative directly stay in its group; the rest are split off
and grouped again on their own edges. Incremental runs merge existing groups that new
images bridge, but never split one.

A "match" is one rule used everywhere (pairs, representatives, merges): pHash within
``radius`` and, to reject different product shots on the same backdrop, the pHash+dHash
distance (one 128-bit code) within ``joint_radius``. With ``flip`` on, the mirrored
orientation may match instead: mirrored pHash vs pHash and mirrored dHash vs dHash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dataops.catalog.hashing import Hashes
from dataops.dedup.index import HashIndex, Pairs
from dataops.dedup.links import StageLinks

# Bit-reversal of every byte value: mirroring an image reverses each dHash row.
_REVERSED_BYTE = np.array([int(f"{b:08b}"[::-1], 2) for b in range(256)], dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class DedupParams:
    """Match thresholds; defaults come from the Kodak + clothing benchmark.

    ``radius`` 10 on the pHash catches resizes, re-encodes, brightness changes and captions
    on every photo. Alone it groups different garments shot on the same backdrop, so the
    pHash+dHash distance (one 128-bit code) must also stay within ``joint_radius``: among the
    clothing photos closest to each other and their edited copies, different garments came
    as close as 15 (pHash 8 + dHash 7), while 14 let none through and keeps ≥ 98 % recall on
    those edits (5 % crops and small rotations drop to about half).
    """

    radius: int = 10
    joint_radius: int | None = 14
    dhash_radius: int | None = None
    flip: bool = True
    rep_radius: int | None = None
    max_group_size: int = 1000

    @property
    def representative_radius(self) -> int:
        """pHash bound between a group's representative and each member."""
        return self.radius if self.rep_radius is None else self.rep_radius


def _u64(values: np.ndarray | Sequence[int]) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == np.uint64:
        return arr
    if arr.dtype.kind not in "iu":
        raise TypeError(f"hashes must be 64-bit integers, got {arr.dtype}")
    return arr.astype(np.int64).astype(np.uint64)


def mirror_dhash(values: np.ndarray | Sequence[int]) -> np.ndarray:
    """dHash of the mirrored image, derived from the dHash alone.

    Mirroring reverses each row and turns "right brighter than left" into its negation, so
    each byte is bit-reversed and inverted (exact except where neighbouring pixels tie).
    """
    arr = np.ascontiguousarray(_u64(values))
    rows = arr.view(np.uint8).reshape(-1, 8)
    return (_REVERSED_BYTE[rows] ^ np.uint8(0xFF)).reshape(-1).view(np.uint64).copy()


@dataclass(frozen=True)
class ImageHashes:
    """Hashes of a set of images, aligned with ``ids`` (uint64, or int64 as stored)."""

    ids: np.ndarray
    phash: np.ndarray
    dhash: np.ndarray | None = None
    phash_flip: np.ndarray | None = None
    _order: np.ndarray = field(init=False, repr=False)
    _sorted_ids: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids, dtype=np.int64).reshape(-1)
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "phash", _u64(self.phash).reshape(-1))
        for name in ("dhash", "phash_flip"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _u64(value).reshape(-1))
        for name in ("phash", "dhash", "phash_flip"):
            value = getattr(self, name)
            if value is not None and value.shape[0] != ids.shape[0]:
                raise ValueError(f"{name} has {value.shape[0]} rows for {ids.shape[0]} ids")
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        if (sorted_ids[1:] == sorted_ids[:-1]).any():
            raise ValueError("ids must be unique")
        object.__setattr__(self, "_order", order)
        object.__setattr__(self, "_sorted_ids", sorted_ids)

    @classmethod
    def from_hashes(cls, ids: Sequence[int] | np.ndarray, hashes: Sequence[Hashes]) -> ImageHashes:
        """From per-image :class:`Hashes` as ingest computes them."""
        return cls(
            ids=np.asarray(ids, dtype=np.int64),
            phash=np.array([h.phash for h in hashes], dtype=np.uint64),
            dhash=np.array([h.dhash for h in hashes], dtype=np.uint64),
            phash_flip=np.array([h.phash_flip for h in hashes], dtype=np.uint64),
        )

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def positions(self, ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """Row of each id; raises KeyError for unknown ids."""
        query = np.asarray(ids, dtype=np.int64).reshape(-1)
        if query.size == 0:
            return np.empty(0, dtype=np.int64)
        sorted_ids = self._sorted_ids
        idx = np.searchsorted(sorted_ids, query)
        idx_clipped = np.minimum(idx, max(len(self) - 1, 0))
        if len(self) == 0 or (sorted_ids[idx_clipped] != query).any():
            missing = query if len(self) == 0 else query[sorted_ids[idx_clipped] != query]
            raise KeyError(f"unknown image ids: {missing[:5].tolist()}")
        return self._order[idx_clipped]

    def subset(self, positions: np.ndarray) -> ImageHashes:
        """The rows at ``positions``."""
        return ImageHashes(
            ids=self.ids[positions],
            phash=self.phash[positions],
            dhash=None if self.dhash is None else self.dhash[positions],
            phash_flip=None if self.phash_flip is None else self.phash_flip[positions],
        )


def _ok(p: np.ndarray, d: np.ndarray | None, radius: int, params: DedupParams) -> np.ndarray:
    ok = p <= radius
    if d is not None:
        if params.dhash_radius is not None:
            ok &= d <= params.dhash_radius
        if params.joint_radius is not None:
            ok &= p + d <= params.joint_radius
    return ok


def match(
    hashes: ImageHashes,
    a: np.ndarray,
    b: np.ndarray,
    params: DedupParams,
    radius: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Whether rows ``a`` and ``b`` are the same picture, and their pHash distance.

    The distance is that of the orientation that matched (or the smaller one when neither
    did), so callers can rank candidates by it.
    """
    r = params.radius if radius is None else radius
    ph = hashes.phash
    p_direct = np.bitwise_count(ph[a] ^ ph[b]).astype(np.int32)
    d_direct = None if hashes.dhash is None else np.bitwise_count(hashes.dhash[a] ^ hashes.dhash[b])
    ok = _ok(p_direct, d_direct, r, params)
    if not (params.flip and hashes.phash_flip is not None):
        return ok, p_direct
    # Mirroring either side: the two pHash distances differ slightly (the DCT median moves);
    # the dHash distances are equal because mirroring is a bit permutation plus inversion.
    flip = hashes.phash_flip
    p_flip = np.minimum(
        np.bitwise_count(flip[a] ^ ph[b]), np.bitwise_count(ph[a] ^ flip[b])
    ).astype(np.int32)
    d_flip = (
        None
        if hashes.dhash is None
        else np.bitwise_count(mirror_dhash(hashes.dhash[a]) ^ hashes.dhash[b])
    )
    ok_flip = _ok(p_flip, d_flip, r, params)
    nearest = np.minimum(p_direct, p_flip)
    dist = np.where(ok & ~ok_flip, p_direct, np.where(ok_flip & ~ok, p_flip, nearest))
    ok = ok | ok_flip
    return ok, dist


def confirm_pairs(hashes: ImageHashes, pairs: Pairs, params: DedupParams) -> Pairs:
    """Keep candidate pairs that pass :func:`match`; drop self-pairs and repeats."""
    if len(pairs) == 0:
        return Pairs.empty()
    keep_distinct = pairs.i != pairs.j
    lo = np.minimum(pairs.i, pairs.j)[keep_distinct]
    hi = np.maximum(pairs.i, pairs.j)[keep_distinct]
    packed = np.unique(np.stack([lo, hi], axis=1), axis=0)
    if packed.shape[0] == 0:
        return Pairs.empty()
    a = hashes.positions(packed[:, 0])
    b = hashes.positions(packed[:, 1])
    ok, dist = match(hashes, a, b, params)
    return Pairs(packed[ok, 0], packed[ok, 1], dist[ok].astype(np.int32))


def find_pairs(
    hashes: ImageHashes, params: DedupParams, *, index: HashIndex | None = None
) -> Pairs:
    """All confirmed duplicate pairs among ``hashes``.

    ``index`` must hold the pHashes of exactly these images; one is built when not given.
    Mirrored candidates come from each image's mirrored pHash against the images indexed
    before it (see :meth:`HashIndex.mirror_pairs`); :func:`match` then checks both
    orientations.
    """
    if index is None:
        index = HashIndex.build(hashes.ids, hashes.phash)
    parts = [index.range_pairs(params.radius)]
    if params.flip and hashes.phash_flip is not None:
        flips = hashes.phash_flip[hashes.positions(index.ids)]
        parts.append(index.mirror_pairs(flips, params.radius))
    return confirm_pairs(hashes, Pairs.concat(parts), params)


def find_new_pairs(
    index: HashIndex, hashes: ImageHashes, new_ids: np.ndarray | Sequence[int], params: DedupParams
) -> Pairs:
    """Confirmed pairs that involve ``new_ids``, adding their pHashes to ``index``.

    ``hashes`` covers old and new images; ``index`` holds the old ones. Together with the
    pairs found before, the result equals :func:`find_pairs` on everything.
    """
    return confirm_pairs(hashes, find_new_hits(index, hashes, new_ids, params), params)


def find_new_hits(
    index: HashIndex, hashes: ImageHashes, new_ids: np.ndarray | Sequence[int], params: DedupParams
) -> Pairs:
    """The candidates of :func:`find_new_pairs` before confirmation (the ones confirmation
    turns down feed the geometric stage); adds the new pHashes to ``index``."""
    new = hashes.subset(hashes.positions(new_ids))
    parts: list[Pairs] = []
    if params.flip and new.phash_flip is not None:
        # As in find_pairs, the later image of a pair is the mirrored one: new vs old here,
        # and new vs earlier new below.
        parts.append(index.query(new.phash_flip, params.radius, ids=new.ids))
        new_only = HashIndex.build(new.ids, new.phash, gpu=False)
        parts.append(new_only.mirror_pairs(new.phash_flip, params.radius))
    parts.append(index.add_and_pair(new.ids, new.phash, params.radius))
    return Pairs.concat(parts)


def representative_rank(
    ids: np.ndarray | Sequence[int],
    pixels: np.ndarray | Sequence[int],
    created: np.ndarray | Sequence[float],
) -> np.ndarray:
    """Rank for choosing representatives (0 = best): most pixels, then oldest, then lowest id."""
    ids_arr = np.asarray(ids, dtype=np.int64)
    order = np.lexsort((ids_arr, np.asarray(created), -np.asarray(pixels, dtype=np.int64)))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    return rank


@dataclass(frozen=True, slots=True)
class SplitComponent:
    """A connected component the anti-chaining guard broke into several groups."""

    size: int
    representatives: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class GroupingReport:
    """What the guard did: components it split and groups above ``max_group_size``."""

    split_components: tuple[SplitComponent, ...] = ()
    oversize_groups: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Grouping:
    """Duplicate groups over ``ids``: ``labels[k]`` is the group of ``ids[k]``, -1 if none."""

    ids: np.ndarray
    labels: np.ndarray
    representatives: np.ndarray
    report: GroupingReport

    def __len__(self) -> int:
        return int(self.representatives.shape[0])

    def groups(self) -> list[np.ndarray]:
        """Member ids of each group, representative first, in label order."""
        if not len(self):
            return []
        grouped = np.flatnonzero(self.labels >= 0)
        order = grouped[np.lexsort((self.ids[grouped], self.labels[grouped]))]
        counts = np.bincount(self.labels[order], minlength=len(self))
        out: list[np.ndarray] = []
        for rep, members in zip(
            self.representatives, np.split(self.ids[order], np.cumsum(counts)[:-1]), strict=True
        ):
            out.append(np.concatenate([[rep], members[members != rep]]))
        return out


def pair_graph(n: int, a: np.ndarray, b: np.ndarray) -> object:
    from scipy.sparse import coo_matrix

    data = np.ones(a.shape[0], dtype=np.int8)
    return coo_matrix((data, (a, b)), shape=(n, n)).tocsr()


def graph_components(graph: object, members: np.ndarray) -> list[np.ndarray]:
    """Connected components of the subgraph on ``members`` (rows of ``graph``).

    Only the members' rows are read (slicing the columns would cost a pass over the graph).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = graph[members].tocoo()  # type: ignore[index]
    local = np.argsort(members)
    ordered = members[local]
    at = np.minimum(np.searchsorted(ordered, edges.col), members.shape[0] - 1)
    inside = ordered[at] == edges.col
    size = members.shape[0]
    sub = coo_matrix(
        (np.ones(int(inside.sum()), np.int8), (edges.row[inside], local[at[inside]])),
        shape=(size, size),
    )
    count, labels = connected_components(sub, directed=False)
    order = np.argsort(labels, kind="stable")
    bounds = np.cumsum(np.bincount(labels, minlength=count))[:-1]
    return [members[part] for part in np.split(order, bounds)]


def rep_near(
    hashes: ImageHashes,
    rep: np.ndarray,
    rows: np.ndarray,
    params: DedupParams,
    links: StageLinks | None = None,
) -> np.ndarray:
    """The guard: whether each of ``rows`` may stay with ``rep`` (same row, a hash match
    within the representative radius, or staged links, see :mod:`dataops.dedup.links`)."""
    ok, _ = match(hashes, rep, rows, params, params.representative_radius)
    ok |= rep == rows
    if links is not None and not ok.all():
        ok[~ok] = links.near(rep[~ok], rows[~ok])
    return ok


def guarded_groups(
    hashes: ImageHashes,
    graph: object,
    members: np.ndarray,
    rank: np.ndarray,
    params: DedupParams,
    links: StageLinks | None = None,
) -> list[np.ndarray]:
    """Split one component into groups whose members all match their representative.

    Returns row arrays with the representative first; singletons are included.
    """
    out: list[np.ndarray] = []
    stack = [members]
    while stack:
        part = stack.pop()
        rep = part[np.argmin(rank[part])]
        ok = rep_near(hashes, np.full(part.shape[0], rep), part, params, links)
        out.append(np.concatenate([[rep], part[ok & (part != rep)]]))
        rest = part[~ok]
        if rest.size:
            stack.extend(graph_components(graph, rest))
    return out


def group_pairs(
    hashes: ImageHashes,
    pairs: Pairs,
    rank: np.ndarray | Sequence[int],
    params: DedupParams | None = None,
    links: StageLinks | None = None,
) -> Grouping:
    """Duplicate groups from confirmed pairs, with the anti-chaining guard.

    ``rank`` is aligned with ``hashes.ids`` (lower = better representative, see
    :func:`representative_rank`). The result depends only on the pair set, not its order.
    ``links`` (the stage-found pairs among ``pairs``) loosen the guard as
    :mod:`dataops.dedup.links` says.
    """
    from scipy.sparse.csgraph import connected_components

    params = params or DedupParams()
    rank_arr = np.asarray(rank)
    n = len(hashes)
    a = hashes.positions(pairs.i)
    b = hashes.positions(pairs.j)
    graph = pair_graph(n, a, b)
    _, comp = connected_components(graph, directed=False)
    groups: list[np.ndarray] = []
    splits: list[SplitComponent] = []
    sizes = np.bincount(comp)
    in_multi = np.flatnonzero(sizes[comp] > 1)
    # Each component's best-ranked member first; most components match it whole, and those
    # become groups in one vectorised pass. The others go through the guard one by one.
    order = in_multi[np.lexsort((rank_arr[in_multi], comp[in_multi]))]
    sorted_comp = comp[order]
    starts = np.flatnonzero(np.r_[True, sorted_comp[1:] != sorted_comp[:-1]][: order.size])
    rep_of = np.repeat(order[starts], np.diff(np.r_[starts, order.size]))
    ok = rep_near(hashes, rep_of, order, params, links)
    whole = np.ones(sizes.shape[0], dtype=bool)
    whole[comp[order[~ok]]] = False
    for members in np.split(order, starts[1:]) if order.size else []:
        if whole[comp[members[0]]]:
            groups.append(members)
            continue
        parts = guarded_groups(hashes, graph, members, rank_arr, params, links)
        if len(parts) > 1:
            reps = sorted((p[0] for p in parts), key=lambda r: rank_arr[r])
            splits.append(
                SplitComponent(int(members.shape[0]), tuple(int(hashes.ids[r]) for r in reps))
            )
        groups.extend(p for p in parts if p.shape[0] > 1)
    groups.sort(key=lambda g: rank_arr[g[0]])
    labels = np.full(n, -1, dtype=np.int64)
    for label, rows in enumerate(groups):
        labels[rows] = label
    reps_ids = np.array([hashes.ids[g[0]] for g in groups], dtype=np.int64)
    oversize = tuple(
        (int(hashes.ids[g[0]]), int(g.shape[0]))
        for g in groups
        if g.shape[0] > params.max_group_size
    )
    splits.sort(key=lambda s: s.representatives)
    return Grouping(
        ids=hashes.ids,
        labels=labels,
        representatives=reps_ids,
        report=GroupingReport(tuple(splits), oversize),
    )
