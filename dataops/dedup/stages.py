"""The recall stages after the hash stage: views, then geometric confirmation.

1. **hash**: full-image pHash within ``radius``, confirmed by pHash+dHash (as before).
2. **view**: each image's views (:mod:`dataops.dedup.views`: inside borders, centre and
   corner crops) against every other image's full pHash, within ``view_radius``, confirmed by
   the same pHash+dHash rule. Catches letterboxed, cropped and rotated copies.
3. **geometric**: hits of stages 1 and 2 that confirmation turned down are candidates; each
   image keeps its ``candidates_per_image`` closest candidates among the images before it
   (by id), and those are checked on local features (:mod:`dataops.dedup.geometric`).

Every choice is made per pair or per later image against earlier ones, so a run over new
images gives exactly the pairs a full run adds (incremental = full). Each pair carries the
stage that matched it first; :data:`STAGES` is that order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from dataops.dedup.geometric import Features, features, verify
from dataops.dedup.grouping import (
    DedupParams,
    ImageHashes,
    confirm_pairs,
    graph_components,
    match,
    pair_graph,
)
from dataops.dedup.index import HashIndex, Pairs
from dataops.dedup.views import ViewTable, drop_pairs, new_view_pairs, view_pairs

HASH, VIEW, GEOMETRIC, SEMANTIC = "hash", "view", "geometric", "semantic"
STAGES = (HASH, VIEW, GEOMETRIC, SEMANTIC)


@dataclass(frozen=True, slots=True)
class StageParams:
    """Defaults measured on real photos (``benchmarks/dedup.py``, recall by edit family)."""

    views: bool = True
    view_radius: int = 8
    geometric: bool = True
    candidates_per_image: int = 3


PixelSource = Callable[[int], "np.ndarray | None"]
"""Image id -> its working grayscale pixels (``views.working_gray``), or None when the image
cannot be read; the geometric stage computes features from them."""


def unique_pairs(pairs: Pairs) -> Pairs:
    """One row per image pair, i < j, the smallest distance; sorted by (i, j)."""
    if len(pairs) == 0:
        return Pairs.empty()
    lo = np.minimum(pairs.i, pairs.j)
    hi = np.maximum(pairs.i, pairs.j)
    keep = lo != hi
    lo, hi, dist = lo[keep], hi[keep], pairs.dist[keep]
    order = np.lexsort((dist, hi, lo))
    lo, hi, dist = lo[order], hi[order], dist[order]
    first = np.ones(lo.shape[0], bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return Pairs(lo[first], hi[first], dist[first].astype(np.int32))


def closest_candidates(rejected: Pairs, known: Pairs, per_image: int) -> Pairs:
    """Each later image's ``per_image`` closest rejected hits with earlier images.

    ``known`` (pairs already confirmed) are never candidates. Ties go to the lower id, so the
    choice depends only on the pair set.
    """
    pairs = drop_pairs(unique_pairs(rejected), unique_pairs(known))
    if len(pairs) == 0 or per_image <= 0:
        return Pairs.empty()
    order = np.lexsort((pairs.i, pairs.dist, pairs.j))
    later = pairs.j[order]
    starts = np.r_[0, np.flatnonzero(later[1:] != later[:-1]) + 1]
    rank = np.arange(later.shape[0]) - np.repeat(starts, np.diff(np.r_[starts, later.shape[0]]))
    keep = order[rank < per_image]
    keep.sort()
    return Pairs(pairs.i[keep], pairs.j[keep], pairs.dist[keep])


def verify_candidates(candidates: Pairs, pixels: PixelSource) -> Pairs:
    """The candidates whose local features agree on one copy-like transform.

    Each image is read once; its mirror image's features are computed only when a check
    against the unmirrored ones fails.
    """
    grays: dict[int, np.ndarray | None] = {}
    feats: dict[tuple[int, bool], Features] = {}

    def features_of(image_id: int, mirror: bool) -> Features | None:
        if image_id not in grays:
            grays[image_id] = pixels(image_id)
        gray = grays[image_id]
        if gray is None:
            return None
        if (image_id, mirror) not in feats:
            feats[image_id, mirror] = features(gray, mirror=mirror)
        return feats[image_id, mirror]

    ok = np.zeros(len(candidates), bool)
    for k, (a, b) in enumerate(zip(candidates.i.tolist(), candidates.j.tolist(), strict=True)):
        fa, fb = features_of(a, False), features_of(b, False)
        if fa is None or fb is None:
            continue
        ok[k] = verify(fa, fb).ok
        if not ok[k]:
            fb_mirror = features_of(b, True)
            ok[k] = fb_mirror is not None and verify(fa, fb_mirror).ok
    return Pairs(candidates.i[ok], candidates.j[ok], candidates.dist[ok])


@dataclass(frozen=True, slots=True)
class StagedPairs:
    """Confirmed pairs of one run with the stage that matched each (i < j, disjoint)."""

    pairs: Pairs
    stage: np.ndarray

    @classmethod
    def of(cls, **by_stage: Pairs) -> StagedPairs:
        """Pairs per stage, earlier stages winning a pair found twice (in :data:`STAGES`
        order)."""
        parts: list[Pairs] = []
        names: list[np.ndarray] = []
        seen = Pairs.empty()
        for name in STAGES:
            found = by_stage.get(name)
            if found is None:
                continue
            found = drop_pairs(unique_pairs(found), seen)
            parts.append(found)
            names.append(np.full(len(found), name, dtype=object))
            seen = unique_pairs(Pairs.concat([seen, found]))
        pairs = Pairs.concat(parts)
        stage = np.concatenate(names) if names else np.empty(0, dtype=object)
        order = np.lexsort((pairs.j, pairs.i))
        return cls(Pairs(pairs.i[order], pairs.j[order], pairs.dist[order]), stage[order])

    def __len__(self) -> int:
        return len(self.pairs)

    def count(self, stage: str) -> int:
        """How many pairs ``stage`` matched."""
        return int((self.stage == stage).sum())


def hash_hits(index: HashIndex, hashes: ImageHashes, params: DedupParams) -> Pairs:
    """Every hash-stage hit before confirmation (direct and mirrored), i < j; ``index``
    holds exactly ``hashes``' images."""
    parts = [index.range_pairs(params.radius)]
    if params.flip and hashes.phash_flip is not None:
        flips = hashes.phash_flip[hashes.positions(index.ids)]
        parts.append(index.mirror_pairs(flips, params.radius))
    return unique_pairs(Pairs.concat(parts))


def new_hash_hits(
    index: HashIndex, hashes: ImageHashes, new_ids: np.ndarray, params: DedupParams
) -> Pairs:
    """The :func:`hash_hits` that involve ``new_ids``; ``index`` holds the other images."""
    new = hashes.subset(hashes.positions(new_ids))
    among_new = HashIndex.build(new.ids, new.phash, gpu=False)
    parts = [index.query(new.phash, params.radius, ids=new.ids), hash_hits(among_new, new, params)]
    if params.flip and new.phash_flip is not None:
        parts.append(index.query(new.phash_flip, params.radius, ids=new.ids))
    return unique_pairs(Pairs.concat(parts))


def run_stages(
    index: HashIndex,
    hashes: ImageHashes,
    views: ViewTable,
    params: DedupParams,
    stage: StageParams,
    pixels: PixelSource,
    *,
    new_ids: np.ndarray | None = None,
    old_index: HashIndex | None = None,
) -> StagedPairs:
    """Confirmed pairs of every stage, over all images or (``new_ids``) those involving new
    images; ``index`` holds every image's full pHash, ``old_index`` (incremental) the others.

    The incremental pairs plus the pairs found before equal a full run's.
    """
    if new_ids is None:
        raw = hash_hits(index, hashes, params)
    else:
        assert old_index is not None
        raw = new_hash_hits(old_index, hashes, new_ids, params)
    by_stage = {HASH: confirm_pairs(hashes, raw, params)}
    rejected = [raw]
    if stage.views:
        view_params = replace(params, radius=stage.view_radius)
        hits = (
            view_pairs(index, hashes, views, view_params)
            if new_ids is None
            else new_view_pairs(index, hashes, views, new_ids, view_params)
        )
        by_stage[VIEW] = hits.confirmed
        rejected.append(hits.rejected)
    if stage.geometric:
        known = Pairs.concat(list(by_stage.values()))
        checks = closest_candidates(Pairs.concat(rejected), known, stage.candidates_per_image)
        by_stage[GEOMETRIC] = verify_candidates(checks, pixels)
    return StagedPairs.of(**by_stage)


STAGE_HOPS = 2
"""How far from the representative a member may sit in the staged pair graph: a direct pair,
or a neighbour in common (1 is the hash stage's rule; chains longer than 2 are never kept)."""


def group_staged(
    hashes: ImageHashes, staged: StagedPairs, rank: np.ndarray, params: DedupParams
) -> np.ndarray:
    """Group labels (aligned with ``hashes.ids``, -1 = none) with the anti-chaining guard.

    As :func:`~dataops.dedup.grouping.group_pairs`, except that a member also stays with
    the representative when a stage paired the two directly or both are paired with one
    image (:data:`STAGE_HOPS`): a crop never matches its original's full hash, but it is one
    step from it, and a crop and a rotated copy are two steps apart. When the best-ranked
    member does not reach the whole component, the member that reaches most of it leads
    the group (a letterboxed copy is the largest image, but the original is the hub).
    """
    from scipy.sparse.csgraph import connected_components

    n = len(hashes)
    a = hashes.positions(staged.pairs.i)
    b = hashes.positions(staged.pairs.j)
    graph = pair_graph(n, a, b)
    direct = np.unique(np.minimum(a, b) * n + np.maximum(a, b))

    def near_rep(rep: np.ndarray, rows: np.ndarray) -> np.ndarray:
        ok, _ = match(hashes, rep, rows, params, params.representative_radius)
        key = np.minimum(rep, rows) * n + np.maximum(rep, rows)
        near: np.ndarray = ok | np.isin(key, direct) | (rep == rows)
        if STAGE_HOPS > 1 and not near.all():
            # A shared neighbour: both paired with one image (a crop and a letterboxed copy
            # of one original), never a longer chain.
            shared = graph[rep[~near]].multiply(graph[rows[~near]]).sum(axis=1)  # type: ignore[index]
            near[~near] = np.asarray(shared).ravel() > 0
        return near

    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp)
    multi = np.flatnonzero(sizes[comp] > 1)
    order = multi[np.lexsort((rank[multi], comp[multi]))]
    labels = np.full(n, -1, dtype=np.int64)
    if order.size == 0:
        return labels
    sorted_comp = comp[order]
    starts = np.flatnonzero(np.r_[True, sorted_comp[1:] != sorted_comp[:-1]])
    rep_of = np.repeat(order[starts], np.diff(np.r_[starts, order.size]))
    ok = near_rep(rep_of, order)
    whole = np.ones(sizes.shape[0], dtype=bool)
    whole[comp[order[~ok]]] = False
    label = 0
    for members in np.split(order, starts[1:]):
        if whole[comp[members[0]]]:
            labels[members] = label
            label += 1
            continue
        stack = [members]
        while stack:
            part = stack.pop()
            keep = _hub(part, rank, near_rep)
            if keep.sum() > 1:
                labels[part[keep]] = label
                label += 1
            rest = part[~keep]
            if rest.size > 1:
                stack.extend(p for p in graph_components(graph, rest) if p.size > 1)
    return labels


HUB_CANDIDATES = 256
"""Members tried as the hub of a component the best-ranked member does not reach whole."""


def _hub(
    part: np.ndarray, rank: np.ndarray, near_rep: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """Which members of ``part`` join the group of the member that reaches most of them
    (ties: the better rank); the mask over ``part``."""
    best: np.ndarray | None = None
    for rep in part[np.argsort(rank[part], kind="stable")][:HUB_CANDIDATES].tolist():
        keep = near_rep(np.full(part.shape[0], rep), part)
        if best is None or int(keep.sum()) > int(best.sum()):
            best = keep
        if int(best.sum()) == part.shape[0]:
            break
    assert best is not None
    return best
