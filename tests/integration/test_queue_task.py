"""One labeling task per queue: selection and manifests use the queue's guideline name.

Labels pulled from a queue are stored under its guideline's name, so a selection for the queue
must exclude images already accepted under that name (or the vendor is paid twice), and a
manifest must freeze that task without the user having to guess ``--task``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from dataops.catalog.ingest import ingest
from dataops.catalog.models import Image
from dataops.db import session_scope
from dataops.labeling import guideline_versions, labels, vendors
from dataops.labeling import service as labeling
from dataops.selection import run, service
from dataops.selection.errors import InvalidSelection, TaskUnclear
from dataops.selection.plan import plan_selection
from dataops.selection.schemas import SelectRequest, select_request
from tests.support.api import MakeUser, bearer
from tests.support.brightness_model import write_gray
from tests.support.cli import run_cli, run_json

GUIDELINES = Path(__file__).resolve().parents[2] / "guidelines"
QUEUE = "acme-clothing"


def images(tmp_path: Path, n: int = 6) -> list[int]:
    folder = tmp_path / "grays"
    for level in range(n):
        write_gray(folder / f"g{level:02d}.png", 20 + 35 * level)
    ingest([str(folder)], transaction=session_scope)
    with session_scope() as session:
        return list(session.scalars(select(Image.id).order_by(Image.uri)))


def clothing_queue() -> None:
    with session_scope() as session:
        guideline_versions.publish_guideline(session, GUIDELINES / "clothing" / "v1.md")
        vendors.create_vendor(session, "acme")
        labeling.create_queue(session, QUEUE, vendor="acme", guideline="clothing")


_rows = iter(range(1, 10**6))


def accept(image_ids: list[int], task: str, cls: str = "Dress") -> None:
    with session_scope() as session:
        for image_id in image_ids:
            labels.add_label_version(
                session,
                image_id=image_id,
                payload={"class": cls},
                source="csv",
                source_id=f"vetted-{next(_rows)}",
                task=task,
                status="accepted",
            )


@pytest.fixture
def world(tmp_path: Path, catalog: str) -> list[int]:
    """Six images and a clothing queue; the first four are accepted for `clothing`."""
    ids = images(tmp_path)
    clothing_queue()
    accept(ids[:4], "clothing")
    return ids


def _random(**fields: str) -> SelectRequest:
    return select_request({"strategy": "random", "size": 1, **fields})


def test_a_queue_selection_skips_images_accepted_for_its_guideline(world: list[int]) -> None:
    with session_scope() as session:
        request = {"strategy": "random", "size": 2, "purpose": "cold_start", "queue": QUEUE}
        batch = run.select_batch(session, select_request(request), actor="t")
        picked = sorted(item.image_id for item in service.batch_out(session, batch).items)
        assert batch.params["task"] == "clothing"
    assert picked == world[4:]


def test_a_task_that_contradicts_the_queue_is_refused(world: list[int]) -> None:
    with (
        pytest.raises(InvalidSelection, match=r"queue 'acme-clothing' labels task 'clothing'"),
        session_scope() as session,
    ):
        plan_selection(session, _random(queue=QUEUE, task="default"))


def test_without_a_queue_the_only_task_is_used_and_several_are_refused(
    world: list[int],
) -> None:
    with session_scope() as session:
        assert plan_selection(session, _random()).task == "clothing"
    accept(world[:1], "helmets", cls="helmet")
    unclear = r"several labeling tasks exist \(clothing, helmets\)"
    with pytest.raises(TaskUnclear, match=unclear), session_scope() as session:
        plan_selection(session, _random())
    with session_scope() as session:
        plan = plan_selection(session, _random(task="helmets"))
        assert plan.task == "helmets"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_cli_select_and_manifest_use_the_queue_task(world: list[int]) -> None:
    batch = run_json(
        "select", "--strategy", "random", "--purpose", "cold_start", "--size", "2", "--queue", QUEUE
    )
    assert sorted(i["image_id"] for i in batch["items"]) == world[4:]
    assert batch["params"]["task"] == "clothing"

    # The only task with accepted labels: no --task needed.
    manifest = run_json("manifest", "create", "only-task", "--splits", "train=1")
    assert (manifest["rows"], manifest["selection"]["task"]) == (4, "clothing")

    # A second task: manifest create must be told which, and says which exist.
    accept(world[:1], "helmets", cls="helmet")
    refused = run_cli("manifest", "create", "which-task", "--json", check=False)
    assert refused.returncode == 2
    assert "several labeling tasks have accepted labels: clothing (4 images), helmets (1 " in (
        refused.stderr
    )
    assert "--task" in refused.stderr
    # --from-batches names the task through the batch's queue.
    accept(world[4:], "clothing")
    scoped = run_json(
        "manifest",
        "create",
        "from-batch",
        "--from-batches",
        str(batch["id"]),
        "--splits",
        "train=1",
    )
    assert (scoped["rows"], scoped["selection"]["task"]) == (2, "clothing")
    # A task with no accepted labels names the ones that have some.
    empty = run_cli("manifest", "create", "empty", "--task", "default", "--json", check=False)
    assert empty.returncode == 2
    assert "tasks with accepted labels: clothing (6 images), helmets (1 images)" in empty.stderr


def test_http_select_and_manifest_follow_the_queue_task(
    world: list[int], api: TestClient, make_user: MakeUser
) -> None:
    scientist = bearer(make_user("scientist"))
    request = {"strategy": "random", "purpose": "cold_start", "size": 2, "queue": QUEUE}
    accepted = api.post("/v1/batches", json=request, headers=scientist)
    assert accepted.status_code == 202, accepted.text
    job = api.get(accepted.json()["status_url"], headers=scientist).json()
    assert job["status"] == "succeeded", job
    assert job["params"]["task"] == "clothing"
    assert sorted(i["image_id"] for i in job["result"]["items"]) == world[4:]

    wrong = api.post("/v1/batches", json={**request, "task": "default"}, headers=scientist)
    assert wrong.status_code == 400
    assert "labels task 'clothing'" in wrong.json()["error"]["message"]

    accept(world[:1], "helmets", cls="helmet")
    unclear = api.post("/v1/manifests", json={"name": "which"}, headers=scientist)
    assert unclear.status_code == 400, unclear.text
    assert unclear.json()["error"]["code"] == "task_unclear"
    assert "clothing (4 images), helmets (1 images)" in unclear.json()["error"]["message"]
    named = api.post(
        "/v1/manifests",
        json={"name": "named", "task": "clothing", "splits": "train=1"},
        headers=scientist,
    )
    assert named.status_code == 202, named.text
