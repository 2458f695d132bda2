"""Duplicate groups and a manifest written row by row, for pages that read them (the dedup run
that finds groups has its own tests)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.orm import Session

from dataops.catalog.models import Image
from dataops.dedup.models import DupGroup
from dataops.manifests.models import Manifest, ManifestRow


def make_groups(session: Session, groups: Sequence[Sequence[int]]) -> list[int]:
    """One live group per list of image ids, its first image the representative."""
    ids = []
    for members in groups:
        group = DupGroup(representative_id=members[0], size=len(members), methods="phash")
        session.add(group)
        session.flush()
        for image_id in members:
            image = session.get(Image, image_id)
            assert image is not None
            image.dup_group_id = group.id
        ids.append(group.id)
    session.flush()
    return ids


def make_manifest(session: Session, name: str, splits: Mapping[int, str]) -> str:
    """A manifest row set over ``splits`` (image id -> split); its content hash."""
    content = "sha256:" + (name.encode().hex() + "ab" * 32)[:64]
    counts: dict[str, int] = {}
    for split in splits.values():
        counts[split] = counts.get(split, 0) + 1
    session.add(
        Manifest(
            name=name,
            content_hash=content,
            seed=0,
            splits={s: 1 / len(counts) for s in counts},
            selection={},
            row_count=len(splits),
            split_counts=counts,
            body_key=f"manifests/{name}/body.jsonl",
            parquet_key=f"manifests/{name}/body.parquet",
        )
    )
    for image_id, split in splits.items():
        image = session.get(Image, image_id)
        assert image is not None
        session.add(
            ManifestRow(content_hash=content, sha256=image.sha256, image_id=image_id, split=split)
        )
    session.flush()
    return content
