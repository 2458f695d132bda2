"""Label issues on PostgreSQL: a k-fold head on a registered model's embeddings finds flipped
labels, the run is stored per label version, and a manifest can leave the flagged ones out.

Images are uniform gray PNGs; the brightness model (tests/support/brightness_model.py) embeds
each as (b, 1 - b), so "dark" below mid-gray and "light" above is learnable from the
embedding, and labels flipped far from mid-gray are the ones a careful reviewer would flag.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from dataops.catalog.ingest import ingest
from dataops.catalog.models import Image
from dataops.db import session_scope
from dataops.jobs import dispatch
from dataops.labeling.models import LabelVersion
from dataops.manifests.models import ManifestRow
from dataops.quality import service
from dataops.quality.models import LabelQuality, LabelQualityRun
from dataops.quality.schemas import IssuesRequest
from dataops.scoring.register import register_model
from tests.support.brightness_model import CLASSES, export, write_gray
from tests.support.cli import run_cli

pytestmark = pytest.mark.postgres

GRAYS = [int(g) for g in range(8, 250, 6) if abs(g - 128) > 12]
FLIPPED = {GRAYS[0], GRAYS[1], GRAYS[-1], GRAYS[-2]}


def _truth(gray: int) -> str:
    return "dark" if gray < 128 else "light"


def _given(gray: int) -> str:
    right = _truth(gray)
    return ({"dark": "light", "light": "dark"}[right]) if gray in FLIPPED else right


@pytest.fixture
def world(tmp_path: Path, pg_catalog: str) -> dict[int, int]:
    """Gray level -> image id; scored by the brightness model; one accepted label each."""
    folder = tmp_path / "grays"
    for gray in GRAYS:
        write_gray(folder / f"g{gray:03d}.png", gray, side=8 + gray % 5)
    ingest([str(folder)], transaction=session_scope)
    model = export(tmp_path / "brightness.pt")
    with session_scope() as session:
        register_model(session, model, name="bright", classes=CLASSES, actor="test")
    job = dispatch.submit("score", {"model": "bright"}, actor="test")
    assert job.status == "succeeded", job.error
    ids: dict[int, int] = {}
    with session_scope() as session:
        for uri, image_id in session.execute(select(Image.uri, Image.id)):
            gray = int(Path(uri).stem[1:])
            ids[gray] = image_id
            session.add(
                LabelVersion(
                    image_id=image_id,
                    payload={"class": _given(gray)},
                    source="csv",
                    source_id=f"g{gray}",
                    source_key=f"csv:g{gray}:-",
                    status="accepted",
                )
            )
    return ids


def _run(**params: object) -> int:
    job = dispatch.submit("label_quality", {"model": "bright", **params}, actor="test")
    assert job.status == "succeeded", job.error
    return int(job.result["id"])


def test_flipped_labels_are_flagged_with_the_right_suggestion(world: dict[int, int]) -> None:
    run_id = _run()
    with session_scope() as session:
        run = session.get(LabelQualityRun, run_id)
        assert run is not None
        assert (run.source, run.params["folds"], run.labels) == ("kfold", 5, len(GRAYS))
        out = service.list_issues(session, IssuesRequest(run=run_id))
        flagged = {q.image_id: q for q in out.labels}
        # Every flip is flagged and they are the most suspect; a label next to mid-gray may be
        # flagged too (the head's boundary is learnt from noisy labels).
        assert {world[g] for g in FLIPPED} <= set(flagged)
        assert {q.image_id for q in out.labels[: len(FLIPPED)]} == {world[g] for g in FLIPPED}
        near_middle = {world[g] for g in GRAYS if abs(g - 128) < 40}
        assert set(flagged) - {world[g] for g in FLIPPED} <= near_middle
        for gray in FLIPPED:
            assert flagged[world[gray]].suggested_class == _truth(gray)
        scored = session.scalar(
            select(func.count()).select_from(LabelQuality).where(LabelQuality.run_id == run_id)
        )
        assert scored == len(GRAYS)
        assert run.per_class["dark"]["issues"] >= 2
    # The newest run of the task is what `labels issues` and the API read.
    with session_scope() as session:
        assert service.latest_run(session, "default", "bright").id == run_id


def test_stored_predictions_are_refused_and_say_why(world: dict[int, int]) -> None:
    result = run_cli(
        "labels", "issues", "--model", "bright", "--source", "predictions", check=False
    )
    assert result.returncode == 2
    assert "--source" in result.stderr and "trained on" in result.stderr
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(LabelQualityRun)) == 0


def test_manifest_leaves_flagged_labels_out_and_records_the_run(world: dict[int, int]) -> None:
    run_id = _run()
    job = dispatch.submit(
        "manifest",
        {"name": "clean", "splits": "train=1.0", "exclude_label_issues": run_id},
        actor="test",
    )
    assert job.status == "succeeded", job.error
    with session_scope() as session:
        rows = session.scalars(
            select(ManifestRow.sha256).where(ManifestRow.content_hash == job.result["id"])
        ).all()
        flipped = {
            sha
            for gray, image_id in world.items()
            if gray in FLIPPED
            for sha in [session.get(Image, image_id).sha256]  # type: ignore[union-attr]
        }
        issues = session.get(LabelQualityRun, run_id).issues  # type: ignore[union-attr]
    assert len(rows) == len(GRAYS) - issues
    assert not flipped & set(rows)
    assert job.result["selection"]["exclude_label_issues"] == run_id
    from dataops.manifests.service import datasheet_md_key
    from dataops.storage import get_store

    sheet = get_store().get(datasheet_md_key(job.result["datasheet_key"])).decode()
    assert f"Estimated label errors (label-quality run {run_id}, kfold)" in sheet
    assert "| dark |" in sheet


def _queue_for_default_task() -> str:
    """A vendor queue whose guideline is named like the labels' task (``default``)."""
    import hashlib

    from dataops.labeling.models import Guideline, Queue
    from tests.support.api import ensure_vendor

    vendor_id = ensure_vendor("acme")
    with session_scope() as session:
        guideline = Guideline(
            name="default",
            version=1,
            sha256=hashlib.sha256(b"default-guideline").hexdigest(),
            kind="classification",
            classes=["dark", "light"],
            body="# Brightness\n",
            label_config="<View/>",
        )
        session.add(guideline)
        session.flush()
        session.add(Queue(name="acme-relabel", vendor_id=vendor_id, guideline_id=guideline.id))
    return "acme-relabel"


def test_label_issues_strategy_makes_a_relabel_batch_of_the_most_suspect(
    world: dict[int, int],
) -> None:
    from dataops.selection.models import Batch, BatchItem

    run_id = _run()
    queue = _queue_for_default_task()
    job = dispatch.submit(
        "select", {"strategy": "label_issues", "size": 4, "queue": queue}, actor="test"
    )
    assert job.status == "succeeded", job.error
    with session_scope() as session:
        batch = session.get(Batch, job.result["id"])
        assert batch is not None
        assert (batch.purpose, batch.strategy) == ("relabel", "label_issues")
        assert batch.params["label_quality_run"] == run_id
        picked = session.scalars(
            select(BatchItem.image_id)
            .where(BatchItem.batch_id == batch.id)
            .order_by(BatchItem.position)
        ).all()
        worst = [q.image_id for q in service.list_issues(session, IssuesRequest(run=run_id)).labels]
    assert picked == worst[:4]
    assert set(picked) == {world[g] for g in FLIPPED}
