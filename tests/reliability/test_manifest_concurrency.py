"""Two manifests created at the same moment on PostgreSQL: no duplicate rows, clean outcomes.

Both creations are held at a barrier just before they write, so they really overlap: each
has read the catalog and checked the name before the other has written anything.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from dataops.catalog.ingest import ingest
from dataops.catalog.models import Image
from dataops.db import session_scope
from dataops.jobs import runner
from dataops.labeling.models import ACCEPTED
from dataops.labeling.service import add_label_version
from dataops.manifests import models, service
from dataops.manifests.create import create_manifest
from dataops.manifests.errors import ManifestExists
from dataops.manifests.rows import ROWS_POINT
from dataops.manifests.schemas import ManifestRequest
from dataops.manifests.verify import verify_manifest
from tests.support.cli import REPO

pytestmark = pytest.mark.postgres


@pytest.fixture
def labeled(pg_catalog: str, tmp_path: Path, corpus: Path) -> int:
    folder = tmp_path / "photos"
    folder.mkdir()
    for src in sorted((corpus / "clothing-dataset").glob("*.jpg"))[:10]:
        shutil.copy(src, folder / src.name)
    ingest([str(folder)], transaction=session_scope, copy=True)
    with session_scope() as s:
        images = list(s.scalars(select(Image).order_by(Image.id)))
        for i, image in enumerate(images):
            add_label_version(
                s,
                image_id=image.id,
                payload={"class": "ab"[i % 2]},
                source="csv",
                source_id=str(image.id),
                status=ACCEPTED,
            )
        return len(images)


def _race(monkeypatch: pytest.MonkeyPatch, *requests: dict[str, Any]) -> list[Any]:
    """Run the creations in threads, all released together right before their first write."""
    barrier = threading.Barrier(len(requests), timeout=120)
    monkeypatch.setitem(runner.PAUSE_POINTS, ROWS_POINT, barrier.wait)
    outcomes: list[Any] = [None] * len(requests)

    def create(index: int, request: dict[str, Any]) -> None:
        try:
            with session_scope() as s:
                made = create_manifest(s, ManifestRequest(**request))
                outcomes[index] = made.content_hash
        except Exception as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=create, args=(i, r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def _counts() -> tuple[int, int, int]:
    with session_scope() as s:
        return (
            s.scalar(select(func.count()).select_from(models.Manifest)) or 0,
            s.scalar(select(func.count()).select_from(models.ManifestRow)) or 0,
            s.scalar(select(func.count(func.distinct(models.ManifestRow.content_hash)))) or 0,
        )


def test_two_names_for_the_same_content_share_one_copy_of_rows(
    labeled: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _race(monkeypatch, {"name": "left", "seed": 1}, {"name": "right", "seed": 1})
    assert isinstance(first, str), first
    assert first == second
    assert _counts() == (2, labeled, 1)


def test_the_same_name_twice_gives_one_manifest_and_one_clear_conflict(
    labeled: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes = _race(monkeypatch, {"name": "dup", "seed": 1}, {"name": "dup", "seed": 2})
    winners = [o for o in outcomes if isinstance(o, str)]
    losers = [o for o in outcomes if not isinstance(o, str)]
    assert len(winners) == 1, outcomes
    assert len(losers) == 1
    assert isinstance(losers[0], ManifestExists), repr(losers[0])
    assert "pick a new name" in str(losers[0])
    assert _counts() == (1, labeled, 1)
    with session_scope() as s:
        assert service.get_manifest(s, "dup").content_hash == winners[0]
        assert verify_manifest(s, "dup").ok


def test_two_cli_processes_racing_for_one_name(labeled: int, pg_catalog: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dataops", "manifest", "create", "cli-race", "--json"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    results = [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    (loser_err,) = [err for code, _, err in results if code == 2]
    assert "already exists" in loser_err or "created meanwhile" in loser_err
    assert "Traceback" not in loser_err
    assert _counts() == (1, labeled, 1)
