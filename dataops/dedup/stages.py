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
from dataops.dedup.grouping import DedupParams, ImageHashes, confirm_pairs, group_pairs
from dataops.dedup.index import HashIndex, Pairs
from dataops.dedup.links import StageLinks
from dataops.dedup.views import ViewTable, drop_pairs, new_view_pairs, view_pairs

HASH, VIEW, GEOMETRIC, SEMANTIC = "hash", "view", "geometric", "semantic"
STAGES = (HASH, VIEW, GEOMETRIC, SEMANTIC)


@dataclass(frozen=True, slots=True)
class StageParams:
    """Defaults measured on real photos (``benchmarks/dedup.py``, recall by edit family)."""

    views: bool = True
    view_radius: int = 10
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
    staged, _ = later_stages(index, hashes, views, raw, params, stage, pixels, new_ids=new_ids)
    return staged


def later_stages(
    index: HashIndex,
    hashes: ImageHashes,
    views: ViewTable,
    hits: Pairs,
    params: DedupParams,
    stage: StageParams,
    pixels: PixelSource,
    *,
    new_ids: np.ndarray | None = None,
) -> tuple[StagedPairs, int]:
    """The hash stage's ``hits`` confirmed, then the view and geometric stages: every pair,
    or (``new_ids``) those involving new images. ``index`` holds every image's full pHash.

    Returns the staged pairs and how many geometric checks ran.
    """
    by_stage = {HASH: confirm_pairs(hashes, hits, params)}
    rejected = [hits]
    if stage.views:
        view_params = replace(params, radius=stage.view_radius)
        found = (
            view_pairs(index, hashes, views, view_params)
            if new_ids is None
            else new_view_pairs(index, hashes, views, new_ids, view_params)
        )
        by_stage[VIEW] = found.confirmed
        rejected.append(found.rejected)
    checks = 0
    if stage.geometric:
        known = Pairs.concat(list(by_stage.values()))
        candidates = closest_candidates(Pairs.concat(rejected), known, stage.candidates_per_image)
        checks = len(candidates)
        by_stage[GEOMETRIC] = verify_candidates(candidates, pixels)
    return StagedPairs.of(**by_stage), checks


def stage_links(hashes: ImageHashes, staged: StagedPairs) -> StageLinks | None:
    """The guard's links for ``staged`` (:mod:`dataops.dedup.links`)."""
    a = hashes.positions(staged.pairs.i)
    b = hashes.positions(staged.pairs.j)
    return StageLinks.build(len(hashes), a, b, np.asarray(staged.stage != HASH, dtype=bool))


def group_staged(
    hashes: ImageHashes, staged: StagedPairs, rank: np.ndarray, params: DedupParams
) -> np.ndarray:
    """Group labels (aligned with ``hashes.ids``, -1 = none) as a full ``dedup run`` groups
    them: :func:`~dataops.dedup.grouping.group_pairs` with the staged links."""
    grouping = group_pairs(hashes, staged.pairs, rank, params, stage_links(hashes, staged))
    return grouping.labels
