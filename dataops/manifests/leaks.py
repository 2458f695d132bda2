"""Duplicate groups that a manifest's splits cut through (the leak report over a manifest)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from dataops.dedup.leaks import find_leaks
from dataops.dedup.schemas import LeakReport
from dataops.manifests.service import manifest_splits


def manifest_leaks(session: Session, ref: str) -> LeakReport:
    """Leaks between the splits of manifest ``ref`` (a name or ``sha256:...``)."""
    return find_leaks(session, manifest_splits(session, ref), source=f"manifest:{ref}")
