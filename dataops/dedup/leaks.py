"""Split leakage: duplicate groups whose members sit in different splits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.catalog.models import Image
from dataops.dedup.errors import LeakSourceError
from dataops.dedup.models import DupGroup
from dataops.dedup.schemas import Leak, LeakReport
from dataops.dedup.service import group_roots

_CHUNK = 500


def attribute_splits(session: Session, attribute: str) -> dict[int, str]:
    """Grouped image id -> its value of ``attribute`` (images without one are left out)."""
    out: dict[int, str] = {}
    for image_id, attrs in session.execute(
        select(Image.id, Image.attributes).where(Image.dup_group_id.is_not(None))
    ):
        value = (attrs or {}).get(attribute)
        if value not in (None, ""):
            out[image_id] = str(value)
    return out


def check_source(manifest: str | None, split_attr: str | None) -> None:
    """The report needs exactly one split source: a manifest or an image attribute."""
    if (manifest is None) == (split_attr is None):
        raise LeakSourceError(
            "name exactly one split source: {manifest} NAME or {split_attr} ATTR",
            fields=("manifest", "split_attr"),
        )


def attribute_leaks(session: Session, attribute: str) -> LeakReport:
    """Leaks between the splits that an image attribute (e.g. ``split``) names."""
    return find_leaks(
        session, attribute_splits(session, attribute), source=f"attribute:{attribute}"
    )


def find_leaks(session: Session, splits: Mapping[int, str], *, source: str) -> LeakReport:
    """Duplicate groups whose members sit in different splits (train/test leakage).

    ``splits`` maps image ids to split names; ``source`` says where they came from.
    """
    roots = group_roots(session)
    by_group: dict[int, dict[str, list[int]]] = {}
    for image_id, group in _grouped_images(session, list(splits)):
        root = roots.get(group, group)
        by_group.setdefault(root, {}).setdefault(splits[image_id], []).append(image_id)
    reps = (
        dict(
            session.execute(
                select(DupGroup.id, DupGroup.representative_id).where(
                    DupGroup.id.in_(list(by_group))
                )
            ).all()
        )
        if by_group
        else {}
    )
    checked = [g for g, s in by_group.items() if sum(len(v) for v in s.values()) > 1]
    leaks = [
        Leak(
            group_id=g,
            representative=reps.get(g),
            splits={name: sorted(ids) for name, ids in sorted(by_group[g].items())},
        )
        for g in sorted(checked)
        if len(by_group[g]) > 1
    ]
    return LeakReport(
        source=source, groups_checked=len(checked), total_leaks=len(leaks), leaks=leaks
    )


def _grouped_images(session: Session, image_ids: Iterable[int]) -> list[tuple[int, int]]:
    ids = list(image_ids)
    out: list[tuple[int, int]] = []
    for start in range(0, len(ids), _CHUNK):
        out.extend(
            (i, g)
            for i, g in session.execute(
                select(Image.id, Image.dup_group_id).where(
                    Image.id.in_(ids[start : start + _CHUNK]), Image.dup_group_id.is_not(None)
                )
            )
            if g is not None
        )
    return out
