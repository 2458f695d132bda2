"""Writing a run's outcome: duplicate edges, group membership and group statistics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.orm import Session, aliased

from dataops.catalog.models import Image
from dataops.database.base import utcnow
from dataops.database.dialect import insert
from dataops.dedup.grouping import DedupParams, match
from dataops.dedup.index import Pairs
from dataops.dedup.models import PHASH, DupEdge, DupGroup
from dataops.dedup.regroup import TEMP, Outcome
from dataops.dedup.state import Catalog

_CHUNK = 500
_BULK = 5000


def sync_edges(
    session: Session,
    pairs: Pairs,
    method: str,
    distance: np.ndarray,
    *,
    reconcile: bool,
    stage: np.ndarray | None = None,
) -> tuple[int, int]:
    """Store pairs not stored yet; with ``reconcile``, delete stored ones no longer found.

    ``stage`` (aligned with ``pairs``) names the stage that matched each pair; without it
    the column's default applies. Stale edges include those of images quarantined since,
    which left the catalog; with ``reconcile`` a stored pair another stage now finds first
    (thresholds changed) takes that stage. Returns (added, removed).
    """
    edges = cast(Table, DupEdge.__table__)
    keep: np.ndarray = np.ones(len(pairs), dtype=bool)
    stale: list[dict[str, Any]] = []
    if reconcile:
        stored = {
            (a, b): was
            for a, b, was in session.execute(
                select(DupEdge.image_a_id, DupEdge.image_b_id, DupEdge.stage).where(
                    DupEdge.method == method
                )
            )
        }
        found = list(zip(pairs.i.tolist(), pairs.j.tolist(), strict=True))
        keep = np.array([pair not in stored for pair in found], dtype=bool)
        stale = [{"a": a, "b": b, "m": method} for a, b in set(stored).difference(found)]
        if stage is not None:
            _restage(session, stored, found, stage, method)
    added = 0
    now = utcnow()
    todo = np.flatnonzero(keep)
    for start in range(0, todo.size, _BULK):
        part = todo[start : start + _BULK]
        rows = [
            {
                "image_a_id": int(pairs.i[k]),
                "image_b_id": int(pairs.j[k]),
                "method": method,
                "distance": float(distance[k]),
                "created_at": now,
                **({} if stage is None else {"stage": str(stage[k])}),
            }
            for k in part.tolist()
        ]
        stmt = insert(session, edges).on_conflict_do_nothing().returning(edges.c.image_a_id)
        added += len(session.execute(stmt, rows).all())
    if stale:
        session.execute(
            delete(edges).where(
                edges.c.image_a_id == bindparam("a"),
                edges.c.image_b_id == bindparam("b"),
                edges.c.method == bindparam("m"),
            ),
            stale,
        )
    return added, len(stale)


def _restage(
    session: Session,
    stored: dict[tuple[int, int], str],
    found: list[tuple[int, int]],
    stage: np.ndarray,
    method: str,
) -> None:
    edges = cast(Table, DupEdge.__table__)
    moved = [
        {"a": a, "b": b, "m": method, "s": str(stage[k])}
        for k, (a, b) in enumerate(found)
        if (a, b) in stored and stored[a, b] != stage[k]
    ]
    if moved:
        session.execute(
            update(edges)
            .where(
                edges.c.image_a_id == bindparam("a"),
                edges.c.image_b_id == bindparam("b"),
                edges.c.method == bindparam("m"),
            )
            .values(stage=bindparam("s")),
            moved,
        )


def _group_methods(session: Session, group_ids: list[int]) -> dict[int, str]:
    ia, ib = aliased(Image), aliased(Image)
    found: dict[int, set[str]] = {}
    for start in range(0, len(group_ids), _CHUNK):
        part = group_ids[start : start + _CHUNK]
        rows = session.execute(
            select(ia.dup_group_id, DupEdge.method)
            .join(ia, ia.id == DupEdge.image_a_id)
            .join(ib, ib.id == DupEdge.image_b_id)
            .where(ia.dup_group_id == ib.dup_group_id, ia.dup_group_id.in_(part))
            .distinct()
        )
        for gid, method in rows:
            if gid is not None:
                found.setdefault(gid, set()).add(method)
    return {gid: ",".join(sorted(methods)) for gid, methods in found.items()}


def _stats(
    cat: Catalog, labels: np.ndarray, reps: dict[int, int], params: DedupParams
) -> dict[int, tuple[int, int]]:
    """(size, largest pHash distance to the representative) of every group."""
    grouped = np.flatnonzero(labels >= 0)
    if grouped.size == 0:
        return {}
    rep_ids = np.array([reps[int(g)] for g in labels[grouped]], dtype=np.int64)
    _, dist = match(
        cat.hashes,
        cat.hashes.positions(rep_ids),
        grouped,
        params,
        params.representative_radius,
    )
    dist = np.where(cat.ids[grouped] == rep_ids, 0, dist)
    gids, inverse = np.unique(labels[grouped], return_inverse=True)
    sizes = np.bincount(inverse)
    largest = np.zeros(gids.shape[0], dtype=np.int64)
    np.maximum.at(largest, inverse, dist)
    return {int(g): (int(s), int(m)) for g, s, m in zip(gids, sizes, largest, strict=True)}


@dataclass
class Written:
    new_groups: int = 0
    merged: int = 0
    changed: bool = False


def write_groups(
    session: Session, cat: Catalog, out: Outcome, params: DedupParams, full: bool
) -> Written:
    """Write ``out``: create new groups, move members, record merges, refresh group stats.

    Leaves ``out`` with real group ids in place of the temporary ones.
    """
    written = Written()
    now = utcnow()
    labels = out.labels.copy()
    written.new_groups = _create_groups(session, out, labels)
    changed, outside = _move_members(session, cat, labels, full)
    touched = {int(g) for g in np.unique(labels[changed]) if g >= 0}
    touched |= {int(g) for g in np.unique(cat.group_of[changed]) if g >= 0}
    touched |= cat.repaired
    if full:
        touched |= {int(g) for g in np.unique(labels[labels >= 0])}
    merges = [
        {"id": gone, "merged_into_id": target, "size": 0, "updated_at": now}
        for gone, target in sorted(out.merged_into.items())
    ]
    if merges:
        session.execute(update(DupGroup), merges)
    written.merged = len(merges)
    if out.dissolved:
        session.execute(
            update(DupGroup),
            [{"id": g, "size": 0, "updated_at": now} for g in sorted(out.dissolved)],
        )
    touched -= set(out.merged_into) | set(out.dissolved)
    updated = _refresh_groups(session, cat, out, labels, sorted(touched), params, now)
    written.changed = bool(
        written.new_groups or changed.size or merges or out.dissolved or updated or outside
    )
    out.labels = labels
    return written


def _create_groups(session: Session, out: Outcome, labels: np.ndarray) -> int:
    """Insert the groups this run created and relabel them (in ``labels`` and ``out``) from
    their temporary ids to the real ones. Returns how many were created."""
    temp = np.unique(labels[labels >= TEMP])
    if not temp.size:
        return 0
    created = [DupGroup(representative_id=out.reps[int(t)], size=0, methods="") for t in temp]
    session.add_all(created)
    session.flush()
    real = np.array([g.id for g in created], dtype=np.int64)
    mask = labels >= TEMP
    labels[mask] = real[np.searchsorted(temp, labels[mask])]
    mapping = {int(t): int(r) for t, r in zip(temp, real, strict=True)}
    out.reps = {mapping.get(g, g): r for g, r in out.reps.items()}
    out.merged_into = {g: mapping.get(t, t) for g, t in out.merged_into.items()}
    return int(temp.size)


def _move_members(
    session: Session, cat: Catalog, labels: np.ndarray, full: bool
) -> tuple[np.ndarray, int]:
    """Point images at their new group. Returns the catalog positions that moved and how many
    images outside the ok catalog left their group (``full`` only)."""
    # Compared with the stored id, so members still pointing at a merged group move too.
    changed = np.flatnonzero(labels != cat.stored)
    for start in range(0, changed.size, _BULK):
        part = changed[start : start + _BULK]
        session.execute(
            update(Image),
            [
                {"id": int(cat.ids[p]), "dup_group_id": None if labels[p] < 0 else int(labels[p])}
                for p in part
            ],
        )
    if not full:
        return changed, 0
    # Images that left the ok catalog (quarantined) leave their groups too.
    grouped = np.fromiter(
        session.scalars(select(Image.id).where(Image.dup_group_id.is_not(None))),
        dtype=np.int64,
    )
    outside = np.setdiff1d(grouped, cat.ids)
    for start in range(0, outside.size, _BULK):
        session.execute(
            update(Image),
            [{"id": int(i), "dup_group_id": None} for i in outside[start : start + _BULK]],
        )
    return changed, int(outside.size)


def _refresh_groups(
    session: Session,
    cat: Catalog,
    out: Outcome,
    labels: np.ndarray,
    touched: list[int],
    params: DedupParams,
    now: datetime,
) -> int:
    """Rewrite representative, size, distance and methods of the touched live groups whose
    stored values differ. Returns how many rows were updated."""
    stats = _stats(cat, labels, out.reps, params)
    active = [g for g in touched if g in stats]
    methods = _group_methods(session, active)
    current = {
        gid: (rep, size, dist, meth)
        for start in range(0, len(active), _CHUNK)
        for gid, rep, size, dist, meth in session.execute(
            select(
                DupGroup.id,
                DupGroup.representative_id,
                DupGroup.size,
                DupGroup.max_distance,
                DupGroup.methods,
            ).where(DupGroup.id.in_(active[start : start + _CHUNK]))
        )
    }
    updates = []
    for gid in active:
        size, dist = stats[gid]
        wanted = (out.reps[gid], size, dist, methods.get(gid, PHASH))
        if current.get(gid) != wanted:
            updates.append(
                {
                    "id": gid,
                    "representative_id": wanted[0],
                    "size": size,
                    "max_distance": dist,
                    "methods": wanted[3],
                    "updated_at": now,
                }
            )
    if updates:
        session.execute(update(DupGroup), updates)
    return len(updates)
