"""Duplicate groups as callers read them: list, detail, contact sheet, merge chains.

Runs that find duplicates and write groups live in :mod:`dataops.dedup.run` (the job in
:mod:`dataops.dedup.jobs`); this module only reads, plus the match thresholds both share.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from dataops.catalog.models import Image
from dataops.config import get_settings
from dataops.dedup.errors import GroupNotFound
from dataops.dedup.grouping import DedupParams, ImageHashes, match
from dataops.dedup.models import DupEdge, DupGroup
from dataops.dedup.schemas import GroupDetail, GroupMember, GroupOut, MemberDetail
from dataops.errors import DataopsError

_CHUNK = 500


def dedup_params(radius: int | None = None) -> DedupParams:
    """Match thresholds from the settings, with an optional radius override."""
    settings = get_settings().dedup
    r = settings.radius if radius is None else radius
    if not 0 <= r <= 32:
        raise DataopsError(f"{{radius}} must be between 0 and 32 bits, got {r}", fields=("radius",))
    return DedupParams(
        radius=r,
        joint_radius=settings.joint_radius,
        flip=settings.flip,
        rep_radius=settings.max_rep_distance,
        max_group_size=settings.max_group_size,
    )


def group_roots(session: Session) -> dict[int, int]:
    """Merged group -> the group it ended up in, following chains."""
    merged = {
        group: into
        for group, into in session.execute(
            select(DupGroup.id, DupGroup.merged_into_id).where(DupGroup.merged_into_id.is_not(None))
        )
        if into is not None
    }
    roots: dict[int, int] = {}
    for start in merged:
        current, seen = start, {start}
        while current in merged and merged[current] not in seen:
            current = merged[current]
            seen.add(current)
        roots[start] = current
    return roots


def _members(session: Session, group_ids: Sequence[int]) -> dict[int, list[Image]]:
    found: dict[int, list[Image]] = {}
    for start in range(0, len(group_ids), _CHUNK):
        part = list(group_ids[start : start + _CHUNK])
        for image in session.scalars(
            select(Image).where(Image.dup_group_id.in_(part)).order_by(Image.id)
        ):
            assert image.dup_group_id is not None
            found.setdefault(image.dup_group_id, []).append(image)
    return found


def _ordered(members: list[Image], rep: int | None) -> list[Image]:
    return sorted(members, key=lambda m: (m.id != rep, m.id))


def _first_members(
    session: Session, group_ids: Sequence[int], per_group: int
) -> dict[int, list[GroupMember]]:
    """The representative and the lowest ids of each group, at most ``per_group`` each: one
    window query, so a page of big groups never loads all their members."""
    if not group_ids:
        return {}
    rank = (
        func.row_number()
        .over(
            partition_by=Image.dup_group_id,
            order_by=(case((Image.id == DupGroup.representative_id, 0), else_=1), Image.id),
        )
        .label("rank")
    )
    ranked = (
        select(Image.id, Image.uri, Image.sha256, Image.dup_group_id, rank)
        .join(DupGroup, DupGroup.id == Image.dup_group_id)
        .where(Image.dup_group_id.in_(list(group_ids)))
        .subquery()
    )
    found: dict[int, list[GroupMember]] = {}
    rows = session.execute(
        select(ranked.c.id, ranked.c.uri, ranked.c.sha256, ranked.c.dup_group_id)
        .where(ranked.c.rank <= per_group)
        .order_by(ranked.c.dup_group_id, ranked.c.rank)
    )
    for image_id, uri, sha, group in rows:
        found.setdefault(group, []).append(GroupMember(image_id=image_id, uri=uri, sha256=sha))
    return found


def list_groups(
    session: Session,
    *,
    limit: int | None = None,
    offset: int = 0,
    members_per_group: int | None = None,
) -> list[GroupOut]:
    """Live groups in id order, representative first in each; with ``members_per_group`` only
    that many members of each (``size`` still counts them all)."""
    stmt = (
        select(DupGroup.id, DupGroup.representative_id, DupGroup.size)
        .where(DupGroup.merged_into_id.is_(None), DupGroup.size > 0)
        .order_by(DupGroup.id)
        .offset(offset)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    groups = session.execute(stmt).all()
    ids = [g for g, _, _ in groups]
    if members_per_group is not None:
        shown = _first_members(session, ids, members_per_group)
        return [
            GroupOut(id=gid, representative=rep, size=size, members=shown[gid])
            for gid, rep, size in groups
            if shown.get(gid)
        ]
    members = _members(session, ids)
    return [
        GroupOut(
            id=gid,
            representative=rep,
            size=len(members[gid]),
            members=[
                GroupMember(image_id=m.id, uri=m.uri, sha256=m.sha256)
                for m in _ordered(members[gid], rep)
            ],
        )
        for gid, rep, _ in groups
        if members.get(gid)
    ]


def get_group(session: Session, group_id: int) -> DupGroup:
    group = session.get(DupGroup, group_id)
    if group is None:
        raise GroupNotFound(f"no duplicate group {group_id} (see `dataops dedup groups`)")
    return group


def _distances(members: list[Image], rep: int | None, params: DedupParams) -> dict[int, int]:
    """pHash distance of each member to the representative (flip-aware, as matching is)."""
    usable = [m for m in members if None not in (m.phash, m.dhash, m.phash_flip)]
    if rep is None or not any(m.id == rep for m in usable):
        return {}
    hashes = ImageHashes(
        ids=np.array([m.id for m in usable], dtype=np.int64),
        phash=np.array([m.phash for m in usable], dtype=np.int64),
        dhash=np.array([m.dhash for m in usable], dtype=np.int64),
        phash_flip=np.array([m.phash_flip for m in usable], dtype=np.int64),
    )
    rep_pos = hashes.positions([rep])[0]
    rows = np.arange(len(hashes))
    _, dist = match(hashes, np.full(rows.shape[0], rep_pos), rows, params)
    return {int(i): int(d) for i, d in zip(hashes.ids, dist, strict=True)}


def _rep_stages(session: Session, rep: int | None) -> dict[int, str]:
    """The stage of each stored edge between the representative and another image (the
    earliest stage when several methods paired them)."""
    if rep is None:
        return {}
    rows = session.execute(
        select(DupEdge.image_a_id, DupEdge.image_b_id, DupEdge.stage).where(
            or_(DupEdge.image_a_id == rep, DupEdge.image_b_id == rep)
        )
    ).all()
    order = {s: k for k, s in enumerate(("hash", "view", "geometric", "semantic"))}
    out: dict[int, str] = {}
    for a, b, stage in rows:
        other = b if a == rep else a
        if other not in out or order.get(stage, 9) < order.get(out[other], 9):
            out[other] = stage
    return out


def group_detail(session: Session, group_id: int) -> GroupDetail:
    group = get_group(session, group_id)
    members = _ordered(_members(session, [group.id]).get(group.id, []), group.representative_id)
    dist = _distances(members, group.representative_id, dedup_params())
    stages = _rep_stages(session, group.representative_id)
    return GroupDetail(
        id=group.id,
        representative=group.representative_id,
        size=len(members),
        max_distance=group.max_distance,
        methods=[m for m in group.methods.split(",") if m],
        merged_into=group.merged_into_id,
        created_at=group.created_at,
        updated_at=group.updated_at,
        members=[
            MemberDetail(
                image_id=m.id,
                uri=m.uri,
                sha256=m.sha256,
                width=m.width,
                height=m.height,
                distance=dist.get(m.id),
                stage=stages.get(m.id),
            )
            for m in members
        ],
    )


def contact_sheet(session: Session, group_id: int, *, tile: int | None = None) -> bytes:
    """A PNG of the group's thumbnails, representative first, labelled with distances."""
    from dataops.dedup import contact_sheet as sheet

    detail = group_detail(session, group_id)
    images = {
        m.id: m
        for m in session.scalars(
            select(Image).where(Image.id.in_([m.image_id for m in detail.members]))
        )
    }
    tiles = []
    for member in detail.members:
        if member.image_id == detail.representative:
            label = f"#{member.image_id} representative"
        elif member.distance is None:
            label = f"#{member.image_id}"
        else:
            label = f"#{member.image_id} d={member.distance}"
        if member.stage and member.image_id != detail.representative:
            label += f" {member.stage}"
        tiles.append(
            sheet.Tile(label=label, data=sheet.image_bytes(images[member.image_id], session))
        )
    return sheet.render(tiles, title=f"duplicate group {detail.id}", tile=tile)
