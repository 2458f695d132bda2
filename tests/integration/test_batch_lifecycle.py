"""Batches a user can steer: assign a draft to a queue, cancel a draft or a sent batch, and a
size guard, so no image stays claimed by a batch that cannot move."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from dataops.db import session_scope
from dataops.events.models import Event
from dataops.labeling.models import LabelVersion
from dataops.labelstudio.client import LabelStudioClient, prediction_result
from dataops.selection import run
from dataops.selection.assign import assign_batch
from dataops.selection.cancel import cancel_batch
from dataops.selection.errors import BatchNotAssignable, BatchNotCancellable
from dataops.selection.models import Batch, BatchItem, ImageClaim
from dataops.selection.schemas import select_request
from tests.integration.test_queue_task import QUEUE, accept, clothing_queue, images
from tests.support.api import MakeUser, bearer
from tests.support.cli import run_cli, run_json
from tests.support.labelstudio import LabelStudioInstance


@pytest.fixture
def world(tmp_path: Path, catalog: str) -> list[int]:
    """Six images and a clothing queue, nothing labeled."""
    ids = images(tmp_path)
    clothing_queue()
    return ids


def draft(size: int, **request: Any) -> int:
    with session_scope() as session:
        fields = {"strategy": "random", "purpose": "cold_start", "size": size, **request}
        batch = run.select_batch(session, select_request(fields), actor="t")
        return batch.id


def claims(batch_id: int | None = None) -> set[int]:
    with session_scope() as session:
        stmt = select(ImageClaim.image_id)
        if batch_id is not None:
            stmt = stmt.where(ImageClaim.batch_id == batch_id)
        return set(session.scalars(stmt))


def items(batch_id: int) -> dict[int, int | None]:
    with session_scope() as session:
        rows = session.execute(
            select(BatchItem.image_id, BatchItem.ls_task_id).where(BatchItem.batch_id == batch_id)
        )
        return {image_id: task_id for image_id, task_id in rows}


def events(action: str, batch_id: int) -> list[dict[str, Any]]:
    with session_scope() as session:
        return [
            e.details
            for e in session.scalars(
                select(Event)
                .where(Event.action == action, Event.entity_id == str(batch_id))
                .order_by(Event.id)
            )
        ]


def set_status(batch_id: int, status: str) -> None:
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        batch.status = status


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_queueless_draft_is_assigned_or_cancelled_and_its_images_come_back(
    world: list[int],
) -> None:
    made = run_json("select", "--strategy", "random", "--purpose", "cold_start", "--size", "3")
    batch = str(made["id"])
    assert made["queue"] is None
    assert len(claims(made["id"])) == 3

    assigned = run_json("batches", "assign", batch, "--queue", QUEUE)
    assert (assigned["queue"], assigned["task"], assigned["size"]) == (QUEUE, "clothing", 3)
    assert assigned["dropped"] == []
    assert run_json("batches", "assign", batch, "--queue", QUEUE) == assigned
    shown = run_json("batches", "show", batch)
    assert (shown["queue"], shown["task"]) == (QUEUE, "clothing")
    assert len(events("batch.assigned", made["id"])) == 1

    cancelled = run_json("batches", "cancel", batch, "--reason", "size typo")
    assert (cancelled["status"], cancelled["released"], cancelled["removed_tasks"]) == (
        "cancelled",
        3,
        0,
    )
    assert claims() == set()
    [status] = [e for e in events("batch.status", made["id"]) if e["to"] == "cancelled"]
    assert (status["from"], status["reason"]) == ("draft", "size typo")
    again = run_json("batches", "cancel", batch)
    assert (again["status"], again["released"]) == ("cancelled", 0)
    assert len(events("batch.cancelled", made["id"])) == 1
    refused = run_cli("batches", "assign", batch, "--queue", QUEUE, "--json", check=False)
    assert refused.returncode == 2
    assert "only drafts get a queue" in refused.stderr
    # Every image is free again.
    everything = run_json(
        "select", "--strategy", "random", "--purpose", "cold_start", "--size", "6", "--queue", QUEUE
    )
    assert sorted(i["image_id"] for i in everything["items"]) == world


def test_assign_takes_out_images_already_labeled_for_the_queue_task(world: list[int]) -> None:
    batch_id = draft(4, task="scratch")
    taken = sorted(items(batch_id))
    accept(taken[:1], "clothing")
    with session_scope() as session:
        change = assign_batch(session, batch_id, QUEUE, actor="t")
    assert (change.task, change.size, change.dropped, change.released) == (
        "clothing",
        3,
        taken[:1],
        1,
    )
    assert sorted(items(batch_id)) == taken[1:]
    assert claims(batch_id) == set(taken[1:])
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        assert (batch.params["task"], batch.size) == ("clothing", 3)
    [assigned] = events("batch.assigned", batch_id)
    assert (assigned["from_queue"], assigned["queue"], assigned["dropped"]) == (
        None,
        QUEUE,
        taken[:1],
    )

    # A draft whose every image is labeled for the queue's task is refused, not emptied.
    other = draft(1, task="scratch")
    accept(list(items(other)), "clothing")
    with pytest.raises(BatchNotAssignable, match="cancel it"), session_scope() as session:
        assign_batch(session, other, QUEUE)


def test_only_drafts_are_assigned_and_closed_batches_are_not_cancelled(world: list[int]) -> None:
    batch_id = draft(2, queue=QUEUE)
    set_status(batch_id, "sent")
    with pytest.raises(BatchNotAssignable, match="only drafts"), session_scope() as session:
        assign_batch(session, batch_id, QUEUE)
    set_status(batch_id, "accepted")
    with pytest.raises(BatchNotCancellable, match="accepted"):
        cancel_batch(batch_id, transaction=session_scope)
    assert len(claims(batch_id)) == 2  # closing rules of audits are theirs, not cancel's


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_size_above_what_is_eligible_or_allowed_is_refused_unless_partial(
    world: list[int],
) -> None:
    accept(world[:4], "clothing")
    ask = ["select", "--strategy", "random", "--purpose", "cold_start", "--queue", QUEUE]
    typo = run_cli(*ask, "--size", "5000", "--json", check=False)
    assert typo.returncode == 2
    assert "only 2 images are eligible for task 'clothing' but the batch asks for 5000" in (
        typo.stderr
    )
    assert "--allow-partial" in typo.stderr
    assert run_json("batches", "list") == {"batches": []}
    assert claims() == set()

    partial = run_json(*ask, "--size", "5000", "--allow-partial")
    assert partial["size"] == 2
    assert (partial["params"]["requested"], partial["params"]["allow_partial"]) == (5000, True)
    run_json("batches", "cancel", str(partial["id"]))

    capped = {"DATAOPS_SELECTION__MAX_BATCH_SIZE": "1"}
    refused = run_cli(*ask, "--size", "2", "--json", env=capped, check=False)
    assert refused.returncode == 2
    assert "above the largest batch allowed (1" in refused.stderr
    one = run_json(*ask, "--size", "2", "--allow-partial", env=capped)
    assert (one["size"], one["params"]["requested"]) == (1, 2)


def test_http_assign_and_cancel_follow_the_roles(
    world: list[int], api: TestClient, make_user: MakeUser
) -> None:
    scientist = bearer(make_user("scientist"))
    ops = bearer(make_user("labeling_ops"))
    vendor = bearer(make_user("vendor", vendor="acme"))
    batch_id = draft(3, task="clothing")
    assign = f"/v1/batches/{batch_id}/assign"
    cancel = f"/v1/batches/{batch_id}/cancel"
    assert api.post(assign, json={"queue": QUEUE}, headers=vendor).status_code == 403
    assert api.post(assign, json={"queue": "nobody"}, headers=scientist).status_code == 404
    assigned = api.post(assign, json={"queue": QUEUE}, headers=scientist)
    assert assigned.status_code == 200, assigned.text
    assert (assigned.json()["queue"], assigned.json()["task"]) == (QUEUE, "clothing")

    set_status(batch_id, "sent")  # out at the vendor (no task pushed here)
    refused = api.post(cancel, headers=scientist)
    assert refused.status_code == 403
    assert "labeling ops" in refused.json()["error"]["message"]
    assert api.post(assign, json={"queue": QUEUE}, headers=scientist).status_code == 409
    cancelled = api.post(cancel, json={"reason": "vendor left"}, headers=ops)
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert (body["status"], body["released"], body["kept_tasks"], body["pull_job_id"]) == (
        "cancelled",
        3,
        0,
        None,
    )
    assert claims() == set()

    partial = {"strategy": "random", "purpose": "cold_start", "size": 99, "queue": QUEUE}
    too_many = api.post("/v1/batches", json=partial, headers=scientist)
    failed = api.get(too_many.json()["status_url"], headers=scientist).json()
    assert failed["status"] == "failed"
    assert "only 6 images are eligible" in failed["error"]
    job = api.post("/v1/batches", json={**partial, "allow_partial": True}, headers=scientist)
    result = api.get(job.json()["status_url"], headers=scientist).json()
    assert result["status"] == "succeeded", result
    assert result["result"]["size"] == len(world)


# --- a sent batch, against the real Label Studio server -------------------------------------


@pytest.fixture
def annotator(labelstudio: LabelStudioInstance) -> Iterator[LabelStudioClient]:
    with LabelStudioClient.connect(labelstudio.url, labelstudio.annotator_tokens[0]) as client:
        yield client


@pytest.mark.labelstudio
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_cancel_a_sent_batch_removes_unlabelled_tasks_and_keeps_labels(
    world: list[int],
    labelstudio: LabelStudioInstance,
    annotator: LabelStudioClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataops.config import reset_settings
    from dataops.jobs import dispatch

    monkeypatch.setenv("DATAOPS_LABELSTUDIO_URL", labelstudio.url)
    monkeypatch.setenv("DATAOPS_LABELSTUDIO_TOKEN", labelstudio.admin_token)
    reset_settings()
    batch_id = draft(4, queue=QUEUE)
    job = dispatch.submit("sync", {"action": "push", "batch_id": batch_id}, actor="test")
    assert job.status == "succeeded", job.error
    pushed = items(batch_id)
    project = job.result["ls_project_id"]  # type: ignore[index]
    with LabelStudioClient.connect(labelstudio.url, labelstudio.admin_token) as admin:
        assert {t["id"] for t in admin.list_tasks(project)} == set(pushed.values())
        labeled_tasks = sorted(t for t in pushed.values() if t is not None)[:2]
        for task_id in labeled_tasks:
            annotator.create_annotation(task_id, prediction_result("classification", label="Dress"))
        # Not pulled yet: the cancel must keep these labels.
        out = run_json("batches", "cancel", str(batch_id), "--reason", "wrong queue")
        assert (out["status"], out["released"]) == ("cancelled", 4)
        assert (out["removed_tasks"], out["kept_tasks"]) == (2, 2)
        assert out["pull"]["created"] == 2
        assert {t["id"] for t in admin.list_tasks(project)} == set(labeled_tasks)

    assert claims() == set()
    after = items(batch_id)
    kept_images = sorted(i for i, t in after.items() if t is not None)
    assert sorted(after[i] for i in kept_images) == labeled_tasks  # type: ignore[type-var]
    with session_scope() as session:
        labels = list(
            session.scalars(select(LabelVersion).where(LabelVersion.batch_id == batch_id))
        )
    assert sorted(v.image_id for v in labels) == kept_images
    assert {(v.task, v.payload["class"]) for v in labels} == {("clothing", "Dress")}
    [record] = events("batch.cancelled", batch_id)
    assert (record["removed_tasks"], record["kept_tasks"], record["reason"]) == (
        2,
        2,
        "wrong queue",
    )

    # The images nobody labeled are selectable again; the labeled ones are not.
    again = run_json(
        "select", "--strategy", "random", "--purpose", "cold_start", "--size", "4", "--queue", QUEUE
    )
    assert not set(kept_images) & {i["image_id"] for i in again["items"]}
    assert set(pushed) - set(kept_images) <= {i["image_id"] for i in again["items"]}
    repeat = run_json("batches", "cancel", str(batch_id))
    assert (repeat["status"], repeat["removed_tasks"], repeat["kept_tasks"]) == ("cancelled", 0, 2)
    assert json.dumps(repeat)  # one JSON document, exit 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_label_studio_down_cancels_nothing(world: list[int]) -> None:
    from tests.support.labelstudio import free_port

    batch_id = draft(2, queue=QUEUE)
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        batch.status, batch.ls_project_id = "sent", 1
        for n, item in enumerate(session.scalars(select(BatchItem))):
            item.ls_task_id = 100 + n
    down = {
        "DATAOPS_LABELSTUDIO_URL": f"http://127.0.0.1:{free_port()}",
        "DATAOPS_LABELSTUDIO_TOKEN": "0" * 40,
    }
    proc = run_cli("batches", "cancel", str(batch_id), "--json", env=down, check=False)
    assert proc.returncode == 3, proc.stderr
    assert "unavailable" in proc.stderr
    assert run_json("batches", "show", str(batch_id))["status"] == "sent"
    assert len(claims(batch_id)) == 2
