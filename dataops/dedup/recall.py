"""The run's recall stages after the hash stage: views, then geometric checks, then links.

The hash stage's hits (from the shards, before confirmation) are confirmed here; every view
of a new image is searched against every full image and every stored view against the new
full images (:func:`~dataops.dedup.views.new_view_pairs`); the closest hits both turned down
(at most ``dedup.candidates_per_image`` per later image) are checked on local features. All
choices are per pair or per later image against earlier ones, so an incremental run adds
exactly the pairs a full run finds. Views are read from ``dup_views`` and computed once for
images that have none (:mod:`dataops.dedup.viewstore`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.config import get_settings
from dataops.dedup.grouping import DedupParams
from dataops.dedup.index import HashIndex, Pairs
from dataops.dedup.links import StageLinks
from dataops.dedup.models import PHASH, DupEdge
from dataops.dedup.stages import HASH, SEMANTIC, StagedPairs, StageParams, later_stages
from dataops.dedup.state import Catalog
from dataops.dedup.views import ViewTable
from dataops.dedup.viewstore import compute_views, load_views, pixel_source, stored_ids


def stage_params() -> StageParams:
    """The recall stages' settings (``DATAOPS_DEDUP__VIEWS``, ``__GEOMETRIC``...)."""
    settings = get_settings().dedup
    return StageParams(
        views=settings.views,
        view_radius=settings.view_radius,
        geometric=settings.geometric,
        candidates_per_image=settings.candidates_per_image,
    )


@dataclass(frozen=True, slots=True)
class RecallStats:
    """What the recall stages cost this run, and the views to store in its write phase."""

    new_views: dict[int, bytes] = field(default_factory=dict)
    geometric_checks: int = 0

    @property
    def views_computed(self) -> int:
        return len(self.new_views)


def run_recall(
    session: Session,
    cat: Catalog,
    index: HashIndex,
    hits: Pairs,
    new_ids: NDArray[np.int64],
    params: DedupParams,
    stage: StageParams,
    *,
    full: bool,
) -> tuple[StagedPairs, RecallStats]:
    """Every stage's confirmed pairs of this run (those involving ``new_ids``; all with
    ``full``). ``index`` holds every image's full pHash; ``hits`` are the hash stage's."""
    views = ViewTable.from_views([], [])
    computed: dict[int, bytes] = {}
    if stage.views and new_ids.size:
        have = stored_ids(session, readable_only=full)
        computed = compute_views(session, np.setdiff1d(cat.ids, have))
        views = load_views(session, cat.ids, computed)
    if not stage.views and not stage.geometric:
        return StagedPairs.of(hash=_confirmed(cat, hits, params)), RecallStats()
    staged, checks = later_stages(
        index,
        cat.hashes,
        views,
        hits,
        params,
        stage,
        pixel_source(session),
        new_ids=None if full else new_ids,
    )
    return staged, RecallStats(new_views=computed, geometric_checks=checks)


def _confirmed(cat: Catalog, hits: Pairs, params: DedupParams) -> Pairs:
    from dataops.dedup.grouping import confirm_pairs

    return confirm_pairs(cat.hashes, hits, params)


def stage_links(
    session: Session, cat: Catalog, staged: StagedPairs, *, from_scratch: bool
) -> StageLinks | None:
    """The guard's staged links: this run's pairs, plus (incremental) the stored ones, so a
    new crop stays with a group whose representative is a letterboxed copy of its original."""
    a = cat.hashes.positions(staged.pairs.i)
    b = cat.hashes.positions(staged.pairs.j)
    is_staged = staged.stage != HASH
    if not from_scratch:
        rows = session.execute(
            select(DupEdge.image_a_id, DupEdge.image_b_id, DupEdge.stage).where(
                DupEdge.method == PHASH
            )
        ).all()
        if rows:
            ia = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            ib = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
            kind = np.array([r[2] for r in rows], dtype=object)
            inside = np.isin(ia, cat.ids) & np.isin(ib, cat.ids)
            a = np.concatenate([a, cat.hashes.positions(ia[inside])])
            b = np.concatenate([b, cat.hashes.positions(ib[inside])])
            is_staged = np.concatenate(
                [is_staged, (kind[inside] != HASH) & (kind[inside] != SEMANTIC)]
            )
    return StageLinks.build(len(cat.hashes), a, b, np.asarray(is_staged, dtype=bool))
