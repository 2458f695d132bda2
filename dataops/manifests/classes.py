"""The class list a manifest numbers its classes by.

It is the class list of the guidelines the rows were labelled under, newest version first,
recorded in the manifest record (``selection["classes"]``) when the manifest is made. Exports
and ``TorchDataset`` read it from there, so class ids stay the same across manifest versions
and later guideline edits do not renumber an existing manifest. Manifests made before it was
recorded fall back to reading the guideline tables.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.labeling.models import Guideline
from dataops.manifests.body import RowRecord
from dataops.manifests.models import Manifest

CLASSES_KEY = "classes"


def guideline_classes(session: Session, rows: Sequence[RowRecord]) -> list[str]:
    """Classes of the rows' guidelines (``name:version``), newest version's order first."""
    wanted: set[tuple[str, int]] = set()
    for row in rows:
        name, _, number = (row["guideline_version"] or "").rpartition(":")
        if name and number.isdigit():
            wanted.add((name, int(number)))
    if not wanted:
        return []
    found = session.execute(
        select(Guideline.name, Guideline.version, Guideline.classes).where(
            Guideline.name.in_({name for name, _ in wanted})
        )
    ).all()
    chosen = sorted(
        (g for g in found if (g.name, g.version) in wanted), key=lambda g: (-g.version, g.name)
    )
    names = (c for g in chosen for c in g.classes if isinstance(c, str))
    return list(dict.fromkeys(names))


def manifest_classes(session: Session, manifest: Manifest, rows: Sequence[RowRecord]) -> list[str]:
    """The class list recorded with the manifest, else (older manifests) the guidelines' list."""
    recorded = (manifest.selection or {}).get(CLASSES_KEY)
    if isinstance(recorded, list) and all(isinstance(name, str) for name in recorded):
        return list(recorded)
    return guideline_classes(session, rows)
