"""Duplicate groups that a manifest's splits cut through (the leak report over a manifest).

The groups are today's (``images.dup_group_id``), not the ones frozen into the rows: a dedup
run after the freeze can find a near-duplicate pair across train and test, and this report is
where it shows. Counting is one aggregate query per (group, split); member ids are read only
for the page of leaking groups asked for, so a million-row manifest is never loaded.

The count joins every grouped image with the manifest's rows (about 1-3 s for a million rows
and 150k grouped images on a small machine), so its result is kept per manifest and dedup
state: manifests never change, and groups change only when dedup writes them (which moves
``dup_groups.updated_at``). Paging through a report, or opening it again, costs one page.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dataops.catalog.models import Image
from dataops.dedup.models import DupGroup
from dataops.dedup.schemas import Leak, LeakReport
from dataops.dedup.service import group_roots
from dataops.manifests.models import ManifestRow
from dataops.manifests.service import get_manifest


def manifest_leaks(
    session: Session, ref: str, *, limit: int | None = None, offset: int = 0
) -> LeakReport:
    """Leaks between the splits of manifest ``ref`` (a name or ``sha256:...``), in group id
    order; ``limit``/``offset`` page through the leaking groups (``total_leaks`` counts all)."""
    content_hash = get_manifest(session, ref).content_hash
    roots = group_roots(session)
    key = (repr(session.get_bind().engine.url), content_hash, _dedup_stamp(session))
    found = _counted.get(key)
    if found is None:
        found = _count(session, content_hash, roots)
        if len(_counted) >= _KEEP:
            _counted.pop(next(iter(_counted)))
        _counted[key] = found
    checked, leaking = found
    page = leaking[offset:] if limit is None else leaking[offset : offset + limit]
    return LeakReport(
        source=f"manifest:{ref}",
        groups_checked=checked,
        total_leaks=len(leaking),
        leaks=_leaks(session, content_hash, page, roots),
    )


_KEEP = 16
# (catalog, manifest content hash, dedup stamp) -> (groups checked, leaking group ids in order)
_counted: dict[tuple[str, str, str], tuple[int, list[int]]] = {}


def _dedup_stamp(session: Session) -> str:
    """Changes whenever dedup writes a group (created, merged, resized or emptied)."""
    n, last = session.execute(select(func.count(), func.max(DupGroup.updated_at))).one()
    return f"{n}:{last.isoformat() if last is not None else ''}"


def _count(session: Session, content_hash: str, roots: dict[int, int]) -> tuple[int, list[int]]:
    counts: dict[int, dict[str, int]] = {}
    for group, split, n in session.execute(
        select(Image.dup_group_id, ManifestRow.split, func.count())
        .join(Image, Image.id == ManifestRow.image_id)
        .where(ManifestRow.content_hash == content_hash, Image.dup_group_id.is_not(None))
        .group_by(Image.dup_group_id, ManifestRow.split)
    ):
        assert group is not None  # filtered by the query
        root = roots.get(group, group)
        per_split = counts.setdefault(root, {})
        per_split[split] = per_split.get(split, 0) + int(n)
    checked = [g for g, s in counts.items() if sum(s.values()) > 1]
    return len(checked), sorted(g for g in checked if len(counts[g]) > 1)


def _leaks(
    session: Session, content_hash: str, page: list[int], roots: dict[int, int]
) -> list[Leak]:
    if not page:
        return []
    wanted = set(page)
    groups = list(wanted | {g for g, root in roots.items() if root in wanted})
    members: dict[int, dict[str, list[int]]] = {g: {} for g in page}
    for image_id, split, group in session.execute(
        select(ManifestRow.image_id, ManifestRow.split, Image.dup_group_id)
        .join(Image, Image.id == ManifestRow.image_id)
        .where(ManifestRow.content_hash == content_hash, Image.dup_group_id.in_(groups))
    ):
        assert group is not None  # filtered by the query
        members[roots.get(group, group)].setdefault(split, []).append(image_id)
    reps = dict(
        session.execute(
            select(DupGroup.id, DupGroup.representative_id).where(DupGroup.id.in_(page))
        ).all()
    )
    return [
        Leak(
            group_id=g,
            representative=reps.get(g),
            splits={name: sorted(ids) for name, ids in sorted(members[g].items())},
        )
        for g in page
    ]
