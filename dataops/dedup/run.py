"""A dedup run: load the catalog, query new images against the index, group, write.

When the index agrees with the catalog (:mod:`dataops.dedup.state`) only images it has not
seen are queried (:func:`~dataops.dedup.grouping.find_new_hits`), in shards
(:mod:`dataops.dedup.shards`), then through the view and geometric stages
(:mod:`dataops.dedup.recall`); new pairs become ``DupEdge`` rows and update the groups
(:mod:`dataops.dedup.regroup`), merging groups a new image bridges and never splitting one.
Otherwise the index is rebuilt or every pair recomputed and the groups reconciled as
``full`` does; either way the summary says so. The caller commits.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from dataops.config import get_settings
from dataops.dedup.grouping import DedupParams
from dataops.dedup.index import HashIndex, Pairs
from dataops.dedup.links import StageLinks
from dataops.dedup.models import PHASH, SEMANTIC
from dataops.dedup.persist import sync_edges, write_groups
from dataops.dedup.recall import run_recall, stage_links, stage_params
from dataops.dedup.regroup import (
    Outcome,
    regroup_from_scratch,
    regroup_incremental,
    semantic_merge,
    settle_old_groups,
)
from dataops.dedup.schemas import DedupRunRequest, DedupSummary
from dataops.dedup.semantic import semantic_pairs, stored_semantic_pairs
from dataops.dedup.service import dedup_params
from dataops.dedup.shards import (
    RUN_ID,
    FanOut,
    Progress,
    gather,
    shard_bounds,
    shard_pairs,
    write_run,
)
from dataops.dedup.stages import GEOMETRIC, HASH, VIEW
from dataops.dedup.state import (
    INDEX_NAME,
    Base,
    Catalog,
    begin_write,
    index_path,
    load_catalog,
    lock_runs,
    open_base,
    read_state,
    runs_dir,
    save_state,
)
from dataops.dedup.viewstore import store_views
from dataops.errors import DataopsError
from dataops.events import service as events

log = logging.getLogger(__name__)


def run_dedup(
    session: Session,
    request: DedupRunRequest | None = None,
    *,
    actor: str | None = None,
    progress: Progress | None = None,
    run_id: str | None = None,
    fan_out: FanOut | None = None,
) -> DedupSummary:
    """Find near-duplicates of new images (or all, with ``full``) and update the groups.

    ``fan_out(run_id, shards)`` sends shard tasks to workers; without it (or for catalogs
    under ``dedup.shard_min_images``) every shard runs here.
    """
    started = time.monotonic()
    request = request or DedupRunRequest()
    semantic, full = request.semantic, request.full
    settings = get_settings().dedup
    params = dedup_params(request.radius)

    def report(done: int, total: int, message: str) -> None:
        if progress:
            progress(done, total, message)

    lock_runs(session)
    report(0, 4, "dedup: loading hashes")
    cat = load_catalog(session)
    state = read_state(session)
    path = index_path()
    base = open_base(state, cat, full, path)
    if base.rebuilt:
        log.warning("dedup index rebuilt: %s", base.reason)
    new_ids = np.setdiff1d(cat.ids, base.index.ids)
    bounds = shard_bounds(int(new_ids.size), settings.shard_size)
    shards = len(bounds) - 1
    sem = Pairs.empty(np.float32)
    if semantic:
        sem = semantic_pairs(session, cat, settings.semantic_threshold)
    elif base.full:
        sem = stored_semantic_pairs(session, cat)
    index = base.index
    remote = 0
    if (
        fan_out is not None
        and run_id is not None
        and shards > 1
        and len(cat.hashes) > settings.shard_min_images
    ):
        if base.rebuilt and len(index):
            index.save(path)
        parts, remote = _query_on_workers(
            cat, base, new_ids, bounds, params, run_id, fan_out, progress
        )
    else:
        parts = [_query_here(cat, index, new_ids, bounds, k, params, report) for k in range(shards)]
    # Each hit belongs to the shard of its later image, so the shards' hits are disjoint.
    hits = Pairs.concat(parts)
    report(3, 4, "dedup: views and geometric checks")
    staged, recall = run_recall(
        session, cat, index, hits, new_ids, params, stage_params(), full=base.full
    )
    pairs = staged.pairs
    _pause("dedup.recalled")
    report(3, 4, "dedup: grouping")

    from_scratch = base.full or not cat.reps
    # No new pair, no link to weigh: an unchanged catalog never reads the stored edges.
    links = stage_links(session, cat, staged, from_scratch=from_scratch) if len(pairs) else None
    out = _regroup(cat, pairs, sem, params, links, from_scratch=from_scratch)

    begin_write(session, state)
    store_views(session, recall.new_views, replace=base.full)
    edges_added, dropped = sync_edges(
        session, pairs, PHASH, pairs.dist, reconcile=base.full, stage=staged.stage
    )
    if semantic:
        sem_distance = 1.0 - sem.dist.astype(np.float64)
        more, gone = sync_edges(session, sem, SEMANTIC, sem_distance, reconcile=base.full)
        edges_added += more
        dropped += gone
    written = write_groups(session, cat, out, params, base.full)
    state_changed = save_state(
        session, index, state, path, rewrite=base.rebuilt or not path.exists()
    )
    labels = out.labels
    sizes = Counter(int(g) for g in labels[labels >= 0])
    changed = bool(edges_added or dropped or written.changed or state_changed)
    summary = DedupSummary(
        images=len(cat.hashes),
        new_images=int(new_ids.size),
        pairs=len(pairs),
        stage_pairs={name: staged.count(name) for name in (HASH, VIEW, GEOMETRIC)},
        views_computed=recall.views_computed,
        geometric_checks=recall.geometric_checks,
        edges_added=edges_added,
        groups=len(sizes),
        new_groups=written.new_groups,
        merged=written.merged,
        split_reported=out.split_reported,
        oversize_groups=[
            [out.reps[g], size] for g, size in sorted(sizes.items()) if size > params.max_group_size
        ],
        split_groups=sorted(out.split_groups),
        semantic_pairs=len(sem),
        full=base.full,
        rebuilt_index=base.rebuilt,
        rebuild_reason=base.reason,
        shards=shards if new_ids.size else 0,
        gpu=index.uses_gpu,
        changed=changed,
        seconds=0.0,
    )
    if changed or base.rebuilt:
        _record(session, summary, out, actor=actor, stale_edges=dropped, remote_shards=remote)
    session.flush()
    summary.seconds = round(time.monotonic() - started, 3)
    return summary


def _pause(name: str) -> None:
    """A named point tests hold or crash a run at (``dataops.jobs.runner.PAUSE_POINTS``)."""
    from dataops.jobs.runner import pause_point

    pause_point(name)


def _query_here(
    cat: Catalog,
    index: HashIndex,
    new_ids: NDArray[np.int64],
    bounds: list[int],
    shard: int,
    params: DedupParams,
    report: Progress,
) -> Pairs:
    """One shard's hash-stage hits, computed in this process (``index`` grows by the
    shard)."""
    pairs = shard_pairs(index, cat.hashes, new_ids, bounds, shard, params)
    report(shard + 1, len(bounds) - 1, "dedup: querying new images")
    return pairs


def _record(
    session: Session,
    summary: DedupSummary,
    out: Outcome,
    *,
    actor: str | None,
    stale_edges: int,
    remote_shards: int,
) -> None:
    """The run's event: the summary plus the merges, refused bridges and stale edges."""
    details = summary.model_dump(exclude={"seconds"})
    details.update(
        merges=[[t, g] for g, t in sorted(out.merged_into.items())],
        refused_bridges=[list(r) for r in out.refused],
        stale_edges_removed=stale_edges,
        shards_remote=remote_shards,
    )
    events.record(session, "dedup.run", "dedup", INDEX_NAME, actor=actor, details=details)


def _regroup(
    cat: Catalog,
    pairs: Pairs,
    sem: Pairs,
    params: DedupParams,
    links: StageLinks | None,
    *,
    from_scratch: bool,
) -> Outcome:
    """The groups after this run: from scratch (``full``, or a catalog without groups yet),
    else existing groups merged by the new pairs; then semantic merges."""
    if from_scratch:
        out = regroup_from_scratch(cat, pairs, params, links)
    elif len(pairs):
        out = regroup_incremental(cat, pairs, params, links)
    else:
        out = Outcome(labels=cat.group_of.copy(), reps=dict(cat.reps))
    semantic_merge(cat, out, sem)
    if from_scratch:
        settle_old_groups(cat, out)
    return out


def _query_on_workers(
    cat: Catalog,
    base: Base,
    new_ids: NDArray[np.int64],
    bounds: list[int],
    params: DedupParams,
    run_id: str,
    fan_out: FanOut,
    progress: Progress | None,
) -> tuple[list[Pairs], int]:
    """The shards' pairs, computed by workers (and here) from the run's folder; adds the new
    images to ``base.index``. Returns the pairs and how many shards other processes ran."""
    if not RUN_ID.match(run_id):
        raise DataopsError(f"invalid dedup run id {run_id!r}")
    run_dir = runs_dir() / run_id
    try:
        write_run(run_dir, cat.hashes, new_ids, bounds, base.index, params)
        parts, remote = gather(run_id, len(bounds) - 1, fan_out, progress)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    base.index.add(new_ids, cat.hashes.phash[cat.hashes.positions(new_ids)])
    return parts, remote
