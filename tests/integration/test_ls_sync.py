"""Batches pushed to a real Label Studio, labeled there by two accounts, pulled back."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from dataops.db import session_scope, utcnow
from dataops.labelstudio.client import LabelStudioClient, prediction_result
from dataops.labelstudio.errors import LabelStudioUnavailable
from tests.support.cli import run_json
from tests.support.labelstudio import LabelStudioInstance, free_port
from tests.support.wait import wait_until

CLASSES = ["T-Shirt", "Pants", "Shoes", "Dress"]
CONTRACT = {
    "id",
    "status",
    "items",
    "tasks",
    "annotations",
    "label_versions",
    "overlap_items",
    "gold_items",
}
TASK_DATA_KEYS = {"image", "dataops_item"}


@dataclass(frozen=True)
class World:
    batch_id: int
    queue_id: int
    regular: int
    gold_pool: list[int]


def make_world(
    image_dir: Path,
    *,
    items: int = 8,
    overlap: float = 0.25,
    gold: float = 0.25,
    gold_pool: int = 4,
) -> World:
    """A vendor queue, a scored catalog, accepted labels to draw gold from, and a draft batch."""
    from dataops.catalog.ingest import ingest
    from dataops.catalog.models import Image
    from dataops.labeling import service as labeling
    from dataops.labeling.models import Guideline
    from dataops.labelstudio.config import label_config
    from dataops.scoring.models import ModelVersion, Prediction
    from dataops.selection.models import Batch, BatchItem

    ingest([str(image_dir)], transaction=session_scope)
    with session_scope() as session:
        images = list(session.scalars(select(Image).where(Image.status == "ok").order_by(Image.id)))
        assert len(images) >= items + gold_pool
        labeling.create_vendor(session, "acme")
        guideline = Guideline(
            name="garments",
            version=1,
            sha256=hashlib.sha256(b"garments v1").hexdigest(),
            kind="classification",
            classes=CLASSES,
            body="Pick the garment type.",
            label_config=label_config("classification", CLASSES),
        )
        session.add(guideline)
        session.flush()
        queue, _ = labeling.create_queue(
            session,
            "acme-garments",
            vendor="acme",
            guideline="garments:1",
            overlap=overlap,
            gold=gold,
            due="3d",
        )
        model = ModelVersion(
            name="clf",
            version=1,
            sha256="b" * 64,
            blob_key="b" * 64,
            classes=CLASSES,
            input_spec={},
        )
        session.add(model)
        session.flush()
        for n, image in enumerate(images[: items + gold_pool]):
            session.add(
                Prediction(
                    model_version_id=model.id,
                    image_id=image.id,
                    probs=[0.55, 0.25, 0.1, 0.1],
                    predicted_class=CLASSES[n % len(CLASSES)].lower(),
                    predicted_score=0.55,
                    least_confidence=0.45,
                    margin=0.3,
                    entropy=1.1,
                )
            )
        for image in images[items : items + gold_pool]:
            labeling.add_label_version(
                session,
                image_id=image.id,
                payload={"class": "Shoes"},
                source="csv",
                source_id=f"vetted-{image.sha256[:16]}",
                guideline_id=guideline.id,
                task="garments",
                status="accepted",
            )
        batch = Batch(
            purpose="active_learning",
            strategy="least_confidence",
            seed=7,
            model_version_id=model.id,
            queue_id=queue.id,
            size=items,
            overlap=overlap,
            gold=gold,
        )
        session.add(batch)
        session.flush()
        for position, image in enumerate(images[:items]):
            session.add(
                BatchItem(
                    batch_id=batch.id,
                    image_id=image.id,
                    item_key=hashlib.sha256(f"{batch.id}:{image.id}".encode()).hexdigest(),
                    position=position,
                )
            )
        return World(
            batch_id=batch.id,
            queue_id=queue.id,
            regular=items,
            gold_pool=[i.id for i in images[items : items + gold_pool]],
        )


def use_labelstudio(monkeypatch: pytest.MonkeyPatch, url: str, token: str) -> None:
    from dataops.config import reset_settings

    monkeypatch.setenv("DATAOPS_LABELSTUDIO_URL", url)
    monkeypatch.setenv("DATAOPS_LABELSTUDIO_TOKEN", token)
    reset_settings()


def sync(params: dict[str, Any]) -> dict[str, Any]:
    from dataops.jobs import dispatch

    job = dispatch.submit("sync", params, actor="test:sync")
    assert job.status == "succeeded", job.error
    assert job.result is not None
    return job.result


def summary(batch_id: int) -> dict[str, Any]:
    from dataops.selection.lifecycle import batch_summary

    with session_scope() as session:
        return batch_summary(session, batch_id)


def items_by_key(batch_id: int) -> dict[str, Any]:
    """The batch's items by the task key they were pushed with."""
    from dataops.labeling.models import TaskKey
    from dataops.selection.models import BatchItem

    with session_scope() as session:
        rows = session.execute(
            select(TaskKey.key, BatchItem)
            .join(BatchItem, BatchItem.id == TaskKey.batch_item_id)
            .where(BatchItem.batch_id == batch_id)
        )
        return {key: item for key, item in rows}


def label_rows(batch_id: int) -> list[Any]:
    from dataops.labeling.models import LabelVersion

    with session_scope() as session:
        return list(
            session.scalars(
                select(LabelVersion)
                .where(LabelVersion.batch_id == batch_id)
                .order_by(LabelVersion.id)
            )
        )


def choice(name: str) -> list[dict[str, Any]]:
    return prediction_result("classification", label=name)


@pytest.fixture
def admin(labelstudio: LabelStudioInstance) -> Iterator[LabelStudioClient]:
    with LabelStudioClient.connect(labelstudio.url, labelstudio.admin_token) as client:
        yield client


@pytest.fixture
def annotators(labelstudio: LabelStudioInstance) -> Iterator[list[LabelStudioClient]]:
    clients = [LabelStudioClient.connect(labelstudio.url, t) for t in labelstudio.annotator_tokens]
    yield clients
    for client in clients:
        client.close()


# --- without Label Studio -------------------------------------------------------------------


def test_lifecycle_counts_and_overdue_flag(catalog: str, image_dir: Path) -> None:
    from dataops.selection import lifecycle

    world = make_world(image_dir, items=4, overlap=0.0, gold=0.0, gold_pool=0)
    draft = summary(world.batch_id)
    assert set(draft) >= CONTRACT
    assert (draft["status"], draft["items"], draft["tasks"], draft["annotations"]) == (
        "draft",
        4,
        0,
        0,
    )
    assert draft["overdue"] is False
    with session_scope() as session:
        batch = lifecycle.get_batch(session, world.batch_id)
        assert lifecycle.mark_sent(session, batch, project_id=99, actor="test")
        assert not lifecycle.mark_sent(session, batch, project_id=99, actor="test")
        # The queue's due date starts counting when the batch is sent.
        assert batch.due_at is not None
        assert batch.sent_at is not None
        assert batch.due_at - batch.sent_at == timedelta(days=3)
        batch.due_at = utcnow() - timedelta(hours=1)
    listed = run_json("batches", "list", "--status", "sent")
    assert [(b["id"], b["overdue"]) for b in listed["batches"]] == [(world.batch_id, True)]
    assert run_json("batches", "list", "--status", "draft") == {"batches": []}
    shown = run_json("batches", "show", str(world.batch_id))
    assert shown["status"] == "sent"
    assert shown["overdue"] is True


# --- against the session's Label Studio server ----------------------------------------------


@pytest.mark.labelstudio
def test_push_label_pull_with_overlap_gold_and_predictions(
    pg_catalog: str,
    image_dir: Path,
    labelstudio: LabelStudioInstance,
    admin: LabelStudioClient,
    annotators: list[LabelStudioClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataops.labeling.models import Annotator, LabelVersion

    use_labelstudio(monkeypatch, labelstudio.url, labelstudio.admin_token)
    world = make_world(image_dir)
    pushed = sync({"action": "push", "batch_id": world.batch_id, "page_size": 4})
    assert pushed["status"] == "sent"
    # Overlap is drawn from all ten items, gold included.
    assert (pushed["overlap_items"], pushed["gold_items"]) == (3, 2)
    assert pushed["items"] == pushed["tasks"] == pushed["created"] == world.regular + 2
    items = items_by_key(world.batch_id)
    gold = {key for key, item in items.items() if item.is_gold}
    overlap = {key for key, item in items.items() if item.is_overlap}
    assert {items[key].image_id for key in gold} <= set(world.gold_pool)
    assert all(items[key].gold_label_version_id is not None for key in gold)
    assert all(items[key].required_annotations == 2 for key in overlap)

    project = pushed["ls_project_id"]
    # Label Studio asks for two answers on the overlap items only.
    assert admin.get_project(project)["maximum_annotations"] == 1
    tasks = {task["data"]["dataops_item"]: task for task in admin.list_tasks(project)}
    assert set(tasks) == set(items)
    for key, task in tasks.items():
        # Gold is mixed in unmarked: every task carries the same keys and a prediction.
        assert set(task["data"]) == TASK_DATA_KEYS
        assert "gold" not in json.dumps([task["data"], task.get("meta")]).lower()
        assert task["data"]["image"].startswith(
            f"http://127.0.0.1:8000/v1/media/t/{task['data']['dataops_item']}?"
        )
        assert task["overlap"] == items[key].required_annotations
        assert "sig=" in task["data"]["image"]
        assert "exp=" in task["data"]["image"]
        assert items[key].ls_task_id == task["id"]
        [prediction] = task["predictions"]
        assert prediction["model_version"] == "clf:v1"
        assert prediction["score"] is None
        assert prediction["result"][0]["value"]["choices"][0] in CLASSES

    # Two real Label Studio accounts label through the API with their own tokens.
    first, second = annotators
    for key, task in tasks.items():
        first.create_annotation(task["id"], choice("Pants"))
        if key in overlap:
            second.create_annotation(task["id"], choice("Dress"))
    pulled = sync({"action": "pull", "batch_id": world.batch_id})
    assert pulled["created"] == len(items) + len(overlap)
    assert pulled["batch"]["status"] == "delivered"
    assert pulled["batch"]["items_complete"] == len(items)

    ids = {client.whoami()["id"]: client.whoami()["email"] for client in annotators}
    with session_scope() as session:
        mapped = {a.ls_user_id: a for a in session.scalars(select(Annotator))}
    assert set(mapped) == set(ids)
    for ls_user_id, annotator in mapped.items():
        assert annotator.email == ids[ls_user_id]
        assert annotator.mapped_by == "ls_user_id"
        assert annotator.connection == "default"
        assert annotator.vendor_id is not None
    rows = label_rows(world.batch_id)
    assert all(r.source == "labelstudio" and r.status == "submitted" for r in rows)
    assert all(r.guideline_id is not None and r.task == "garments" for r in rows)
    per_image: dict[int, set[int | None]] = {}
    for row in rows:
        per_image.setdefault(row.image_id, set()).add(row.annotator_id)
    for key, item in items.items():
        assert len(per_image[item.image_id]) == (2 if key in overlap else 1)

    # Pulling again changes nothing, even reading every task again.
    again = sync({"action": "pull", "batch_id": world.batch_id})
    assert again["created"] == 0
    everything = sync({"action": "pull", "batch_id": world.batch_id, "full": True})
    assert (everything["created"], everything["existing"]) == (0, len(rows))
    assert len(label_rows(world.batch_id)) == len(rows)

    # An edit in Label Studio is exactly one new version superseding the old one.
    edited_key = sorted(overlap)[0]
    second_id = second.whoami()["id"]
    [theirs] = [
        annotation
        for task in admin.list_tasks(project)
        if task["data"]["dataops_item"] == edited_key
        for annotation in task["annotations"]
        if annotation["updated_by"] == second_id
    ]
    second.update_annotation(theirs["id"], choice("Shoes"))
    after_edit = sync({"action": "pull", "queue_id": world.queue_id})
    assert after_edit["created"] == 1
    with session_scope() as session:
        versions = list(
            session.scalars(
                select(LabelVersion)
                .where(LabelVersion.source_id == f"default:{theirs['id']}")
                .order_by(LabelVersion.id)
            )
        )
    assert [v.payload["class"] for v in versions] == ["Dress", "Shoes"]
    assert versions[1].supersedes_id == versions[0].id
    edited = summary(world.batch_id)
    assert (edited["label_versions"], edited["annotations"]) == (len(rows) + 1, len(rows))

    # A skip is recorded once and is no label.
    plain = next(key for key in sorted(items) if key not in overlap)
    second.create_annotation(tasks[plain]["id"], [], was_cancelled=True)
    skipped = sync({"action": "pull", "batch_id": world.batch_id})
    assert (skipped["skipped"], skipped["created"]) == (1, 0)
    assert sync({"action": "pull", "batch_id": world.batch_id})["skipped"] == 0
    final = summary(world.batch_id)
    assert final["skipped"] == 1
    with session_scope() as session:
        from dataops.events.models import Event
        from dataops.labelstudio.models import SkippedAnnotation

        [row] = session.scalars(select(SkippedAnnotation))
        assert (row.batch_id, row.item_key) == (world.batch_id, items[plain].item_key)
        logged = session.scalars(select(Event).where(Event.action == "label.skipped")).all()
        assert [e.details["source_id"] for e in logged] == [row.source_id]
    assert final["label_versions"] == len(rows) + 1

    shown = run_json("batches", "show", str(world.batch_id))
    assert set(shown) >= CONTRACT
    assert {k: shown[k] for k in CONTRACT} == {k: final[k] for k in CONTRACT}
    assert shown["tasks"] == shown["items"] == world.regular + 2
    assert shown["overlap_items"] == 3
    assert shown["gold_items"] == 2
    listed = run_json("batches", "list", "--queue", "acme-garments")
    assert [b["id"] for b in listed["batches"]] == [world.batch_id]


@pytest.mark.labelstudio
def test_interrupted_push_resumes_without_duplicates(
    catalog: str,
    image_dir: Path,
    labelstudio: LabelStudioInstance,
    admin: LabelStudioClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataops.jobs import dispatch
    from dataops.jobs.models import Job

    use_labelstudio(monkeypatch, labelstudio.url, labelstudio.admin_token)
    world = make_world(image_dir)
    original = LabelStudioClient.import_tasks
    calls = []

    def applied_then_lost(
        self: LabelStudioClient, project_id: int, tasks: list[dict[str, Any]]
    ) -> list[int]:
        # The second page reaches Label Studio, but its answer never comes back.
        calls.append(len(tasks))
        ids = original(self, project_id, tasks)
        if len(calls) == 2:
            raise LabelStudioUnavailable(f"{self.url} timed out", attempts=1)
        return ids

    monkeypatch.setattr(LabelStudioClient, "import_tasks", applied_then_lost)
    with pytest.raises(LabelStudioUnavailable):
        dispatch.submit("sync", {"action": "push", "batch_id": world.batch_id, "page_size": 3})
    with session_scope() as session:
        [failed] = session.scalars(select(Job).where(Job.kind == "sync"))
        assert failed.status == "failed"
        assert labelstudio.url in (failed.error or "")
    interrupted = summary(world.batch_id)
    assert interrupted["status"] == "draft"
    assert interrupted["tasks"] == 3  # only the committed page
    project = interrupted["ls_project_id"]
    assert len(list(admin.list_tasks(project))) == 6  # two pages reached Label Studio

    monkeypatch.setattr(LabelStudioClient, "import_tasks", original)
    # Resume from another process, through the command line.
    resumed = run_json("batches", "push", str(world.batch_id), "--page-size", "3")
    total = world.regular + 2
    assert resumed["status"] == "sent"
    assert (resumed["created"], resumed["existing"]) == (total - 6, 3)
    tasks = list(admin.list_tasks(project))
    assert len(tasks) == total
    keys = {task["data"]["dataops_item"]: task["id"] for task in tasks}
    assert {key: item.ls_task_id for key, item in items_by_key(world.batch_id).items()} == keys

    # Pushing a sent batch again is a no-op.
    repeated = run_json("batches", "push", str(world.batch_id))
    assert (repeated["created"], repeated["existing"]) == (0, 0)
    assert len(list(admin.list_tasks(project))) == total


@pytest.mark.labelstudio
def test_deletions_are_recorded_never_erased(
    pg_catalog: str,
    image_dir: Path,
    labelstudio: LabelStudioInstance,
    admin: LabelStudioClient,
    annotators: list[LabelStudioClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataops.jobs.models import Job
    from dataops.labelstudio.jobs import poll_open_queues

    use_labelstudio(monkeypatch, labelstudio.url, labelstudio.admin_token)
    world = make_world(image_dir, items=4, overlap=0.0, gold=0.0, gold_pool=0)
    project = sync({"action": "push", "batch_id": world.batch_id})["ls_project_id"]
    tasks = list(admin.list_tasks(project))
    made = [annotators[0].create_annotation(task["id"], choice("Shoes")) for task in tasks]
    # The periodic poll pulls every queue with a batch out at the vendor.
    [polled_job] = poll_open_queues()
    with session_scope() as session:
        job = session.get(Job, polled_job)
        assert job is not None
        assert job.params == {
            "action": "pull",
            "queue_id": world.queue_id,
            "full": False,
            "page_size": 100,
        }
        assert job.result is not None
        assert job.result["created"] == 4

    # Deleting an annotation touches its task, so the next poll records the deletion.
    annotators[0].delete_annotation(made[0]["id"])
    polled = sync({"action": "pull", "batch_id": world.batch_id})
    assert (polled["deleted"], polled["created"]) == (1, 0)

    # A task deleted outright is only seen by a full pull.
    gone = httpx.delete(
        f"{labelstudio.url}/api/tasks/{tasks[1]['id']}/",
        headers={"Authorization": f"Token {labelstudio.admin_token}"},
        timeout=30,
    )
    assert gone.status_code == 204, gone.text
    assert sync({"action": "pull", "batch_id": world.batch_id})["deleted"] == 0
    full = sync({"action": "pull", "batch_id": world.batch_id, "full": True})
    assert full["deleted"] == 1
    assert sync({"action": "pull", "batch_id": world.batch_id, "full": True})["deleted"] == 0

    rows = label_rows(world.batch_id)
    deleted = [r for r in rows if r.status == "deleted"]
    assert len(rows) == 6
    assert len(deleted) == 2
    originals = {r.id: r for r in rows if r.status != "deleted"}
    for record in deleted:
        # The deleted label is still there, superseded by the deletion record.
        assert record.supersedes_id in originals
        assert originals[record.supersedes_id].source_id == record.source_id
    shown = summary(world.batch_id)
    assert (shown["annotations"], shown["label_versions"]) == (2, 6)


@pytest.fixture
def api_server(pg_catalog: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The dataops API on a loopback port, where Label Studio's webhooks can reach it."""
    import uvicorn

    from dataops.api.app import create_app
    from dataops.config import reset_settings

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("DATAOPS_PUBLIC_URL", url)
    reset_settings()
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, "the API to start", timeout=10)
    yield url
    server.should_exit = True
    thread.join(timeout=15)


def _wait_for(predicate: Any, what: str) -> None:
    wait_until(predicate, what, timeout=60, interval=0.2)


@pytest.mark.labelstudio
def test_webhook_pulls_and_records_deletions(
    api_server: str,
    image_dir: Path,
    labelstudio: LabelStudioInstance,
    admin: LabelStudioClient,
    annotators: list[LabelStudioClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataops.labelstudio.webhooks import WEBHOOK_HEADER, webhook_secret

    use_labelstudio(monkeypatch, labelstudio.url, labelstudio.admin_token)
    world = make_world(image_dir, items=3, overlap=0.0, gold=0.0, gold_pool=0)
    project = sync({"action": "push", "batch_id": world.batch_id})["ls_project_id"]
    hook = f"{api_server}/v1/labelstudio/webhook/default"
    forged = {"action": "ANNOTATIONS_DELETED", "project": {"id": project}, "annotations": []}
    assert httpx.post(hook, json=forged, timeout=10).status_code == 403
    wrong = httpx.post(hook, json=forged, headers={WEBHOOK_HEADER: "0" * 64}, timeout=10)
    assert wrong.status_code == 403
    unknown = httpx.post(
        f"{api_server}/v1/labelstudio/webhook/elsewhere",
        json=forged,
        headers={WEBHOOK_HEADER: webhook_secret("elsewhere")},
        timeout=10,
    )
    assert unknown.status_code == 404

    # No pull is run here: Label Studio's webhook makes the API pull by itself.
    tasks = list(admin.list_tasks(project))
    made = [annotators[1].create_annotation(task["id"], choice("Pants")) for task in tasks]
    _wait_for(lambda: summary(world.batch_id)["annotations"] == 3, "the webhook-driven pull")
    _wait_for(lambda: summary(world.batch_id)["status"] == "delivered", "delivery")

    _wait_for(_no_sync_running, "background pulls")
    jobs_before = _sync_jobs()
    # Label Studio delivers webhooks before it answers, so the deletion is already recorded,
    # by the webhook itself: no pull ran for it.
    annotators[1].delete_annotation(made[2]["id"])
    [record] = [r for r in label_rows(world.batch_id) if r.status == "deleted"]
    assert _sync_jobs() == jobs_before
    assert record.source_id == f"default:{made[2]['id']}"
    assert record.created_by == "labelstudio:default"
    # Polling agrees with what the webhooks recorded.
    again = sync({"action": "pull", "batch_id": world.batch_id, "full": True})
    assert (again["created"], again["deleted"]) == (0, 0)
    assert len(label_rows(world.batch_id)) == 4


def _sync_jobs() -> int:
    from dataops.jobs.models import Job

    with session_scope() as session:
        return session.scalar(select(func.count()).where(Job.kind == "sync")) or 0


def _no_sync_running() -> bool:
    from dataops.jobs.models import Job

    with session_scope() as session:
        busy = session.scalar(
            select(func.count()).where(Job.kind == "sync", Job.status.in_(["pending", "running"]))
        )
    return not busy
