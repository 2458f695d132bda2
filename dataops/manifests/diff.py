"""Comparing two manifests: what was added, removed, relabelled or moved between splits.

A shared image that changed split is a leak (it was trained on in one and evaluated on in
the other); so is a duplicate group whose members are in several splits.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.manifests import models
from dataops.manifests.datasheet import NO_CLASS, label_classes
from dataops.manifests.models import Manifest
from dataops.manifests.schemas import DiffReport, Relabel, SplitMove
from dataops.manifests.service import get_manifest


def _rows_of(
    session: Session, manifest: Manifest
) -> dict[str, tuple[str, dict[str, Any] | None, int | None]]:
    return {
        sha: (split, label, group)
        for sha, split, label, group in session.connection().execute(
            select(
                models.ManifestRow.sha256,
                models.ManifestRow.split,
                models.ManifestRow.label,
                models.ManifestRow.dup_group_id,
            ).where(models.ManifestRow.content_hash == manifest.content_hash)
        )
    }


def _class_counts(
    rows: Mapping[str, tuple[str, dict[str, Any] | None, int | None]],
) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for split, label, _ in rows.values():
        for name in label_classes(label) or [NO_CLASS]:
            counts[split][name] += 1
    return {split: dict(sorted(c.items())) for split, c in sorted(counts.items())}


def diff_manifests(session: Session, a: str, b: str, *, limit: int | None = 1000) -> DiffReport:
    """Added, removed and relabelled images, split moves and class counts from ``a`` to ``b``.

    A shared image that changed split is a leak (it was trained on in one and evaluated on
    in the other); so is a duplicate group of ``b`` whose members are in several splits.
    Lists are cut at ``limit`` entries each (counts are always complete).
    """
    first, second = get_manifest(session, a), get_manifest(session, b)
    old, new = _rows_of(session, first), _rows_of(session, second)
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    shared = sorted(old.keys() & new.keys())
    relabelled = [
        Relabel(sha256=sha, before=old[sha][1], after=new[sha][1])
        for sha in shared
        if old[sha][1] != new[sha][1]
    ]
    moves = [
        SplitMove(sha256=sha, before=old[sha][0], after=new[sha][0])
        for sha in shared
        if old[sha][0] != new[sha][0]
    ]
    group_splits: dict[int, set[str]] = defaultdict(set)
    for split, _, group in new.values():
        if group is not None:
            group_splits[group].add(split)
    straddling = sorted(g for g, s in group_splits.items() if len(s) > 1)

    def cut(items: list[Any]) -> list[Any]:
        return items if limit is None else items[:limit]

    lists = (added, removed, relabelled, moves, straddling)
    return DiffReport(
        a=first.name,
        b=second.name,
        a_id=first.content_hash,
        b_id=second.content_hash,
        counts={
            "a_rows": len(old),
            "b_rows": len(new),
            "added": len(added),
            "removed": len(removed),
            "unchanged": len(shared)
            - len({r.sha256 for r in relabelled} | {m.sha256 for m in moves}),
            "relabelled": len(relabelled),
            "split_moves": len(moves),
            "straddling_groups": len(straddling),
        },
        added=cut(added),
        removed=cut(removed),
        relabelled=cut(relabelled),
        split_moves=cut(moves),
        straddling_groups=cut(straddling),
        leak=bool(moves or straddling),
        class_counts={"a": _class_counts(old), "b": _class_counts(new)},
        truncated=limit is not None and any(len(items) > limit for items in lists),
    )
