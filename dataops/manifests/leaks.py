"""Duplicate groups that a manifest's splits cut through (the leak report over a manifest)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.dedup.leaks import find_leaks
from dataops.dedup.schemas import LeakReport
from dataops.manifests.models import ManifestRow
from dataops.manifests.service import get_manifest


def manifest_leaks(session: Session, ref: str) -> LeakReport:
    """Leaks between the splits of manifest ``ref`` (a name or ``sha256:...``)."""
    manifest = get_manifest(session, ref)
    splits = dict(
        session.execute(
            select(ManifestRow.image_id, ManifestRow.split).where(
                ManifestRow.content_hash == manifest.content_hash
            )
        ).all()
    )
    return find_leaks(session, splits, source=f"manifest:{ref}")
