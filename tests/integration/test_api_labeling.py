"""Vendors, guidelines, queues, queue tasks, annotators and Label Studio push/pull over HTTP."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from dataops.db import session_scope
from tests.support.api import MakeUser, bearer, ingest_files, make_queue, write_photo

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "guidelines" / "digits"


def _events(action: str) -> list[tuple[str, str]]:
    """(actor, entity id) of every Event with this action."""
    from dataops.events.models import Event

    with session_scope() as session:
        rows = session.execute(
            select(Event.actor, Event.entity_id).where(Event.action == action).order_by(Event.id)
        )
        return [(actor, entity) for actor, entity in rows]


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    return str(response.json()["error"]["message"])


@pytest.fixture
def ops(make_user: MakeUser) -> dict[str, str]:
    return bearer(make_user("labeling_ops", name="ops"))


def test_vendor_guideline_queue_round_trip(
    api: TestClient, ops: dict[str, str], make_user: MakeUser
) -> None:
    made = api.post("/v1/vendors", json={"name": "acme"}, headers=ops)
    assert made.status_code == 201 and made.json()["created"] is True
    again = api.post("/v1/vendors", json={"name": "acme"}, headers=ops)
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["id"] == made.json()["id"]
    assert _events("vendor.created") == [("user:ops", str(made.json()["id"]))]

    text = (DIGITS / "v1.md").read_text(encoding="utf-8")
    published = api.post("/v1/guidelines", json={"name": "digits", "markdown": text}, headers=ops)
    assert published.status_code == 201, published.text
    body = published.json()
    # The same text as the file has the version id `dataops guidelines publish` would give it.
    assert body["sha256"] == hashlib.sha256((DIGITS / "v1.md").read_bytes()).hexdigest()
    assert (body["ref"], body["kind"], body["created_by"]) == (
        "digits:1",
        "classification",
        "user:ops",
    )
    assert body["classes"] == [str(n) for n in range(10)]
    repeat = api.post("/v1/guidelines", json={"name": "digits", "markdown": text}, headers=ops)
    assert repeat.status_code == 200 and repeat.json()["id"] == body["id"]
    assert _events("guideline.published") == [("user:ops", str(body["id"]))]

    auditor = bearer(make_user("auditor"))
    detail = api.get("/v1/guidelines/digits:1", headers=auditor).json()
    assert detail["body"] == text
    assert detail["label_config"] == (DIGITS / "label_config.xml").read_text().rstrip("\n")
    assert [g["ref"] for g in api.get("/v1/guidelines", headers=auditor).json()] == ["digits:1"]
    only = api.get("/v1/guidelines", params={"name": "other"}, headers=auditor).json()
    assert only == []

    queue = {
        "name": "acme-digits",
        "vendor": "acme",
        "guideline": "digits",
        "overlap": 0.2,
        "gold": 0.05,
        "due": "3d",
    }
    created = api.post("/v1/queues", json=queue, headers=ops)
    assert created.status_code == 201, created.text
    q = created.json()
    assert (q["vendor"], q["guideline"], q["due_days"], q["connection"]) == (
        "acme",
        "digits:1",
        3.0,
        "default",
    )
    assert api.post("/v1/queues", json=queue, headers=ops).status_code == 200
    changed = api.post("/v1/queues", json={**queue, "overlap": 0.5}, headers=ops)
    _error(changed, 409)
    assert _events("queue.created") == [("user:ops", str(q["id"]))]
    by_name = api.get("/v1/queues/acme-digits", headers=auditor).json()
    assert by_name == api.get(f"/v1/queues/{q['id']}", headers=auditor).json()
    assert [x["name"] for x in api.get("/v1/queues", headers=auditor).json()] == ["acme-digits"]
    assert api.get("/v1/queues", params={"vendor": "acme"}, headers=auditor).json() == [by_name]
    _error(api.get("/v1/queues", params={"vendor": "nobody"}, headers=auditor), 404)

    # A new guideline version is a new version number, and never re-pins the existing queue.
    v2 = text.replace("version 1", "version 2", 1)
    second = api.post("/v1/guidelines", json={"name": "digits", "markdown": v2}, headers=ops)
    assert second.status_code == 201 and second.json()["ref"] == "digits:2"
    pinned = api.post("/v1/queues", json={**queue, "guideline": "digits:2"}, headers=ops)
    assert "pinned" in _error(pinned, 409)
    assert api.get("/v1/guidelines/digits", headers=auditor).json()["version"] == 2


def test_vendor_sees_only_its_own_queues_and_tasks(
    api: TestClient, make_user: MakeUser, tmp_path: Path
) -> None:
    mine, theirs = ingest_files([write_photo(tmp_path / f"{i}.jpg", seed=i) for i in range(2)])
    own = make_queue("acme", [mine])
    other = make_queue("globex", [theirs])
    vendor = bearer(make_user("vendor", vendor="acme"))

    listed = api.get("/v1/queues", headers=vendor).json()
    assert [q["id"] for q in listed] == [own]
    assert api.get("/v1/queues", params={"vendor": "globex"}, headers=vendor).json() == []
    assert api.get("/v1/queues", params={"vendor": "acme"}, headers=vendor).json() == listed
    assert api.get(f"/v1/queues/{own}", headers=vendor).json()["vendor"] == "acme"

    other_name = api.get(f"/v1/queues/{other}", headers=bearer(make_user("admin"))).json()["name"]
    for ref, missing in ((other, 999999), (other_name, "globex-queue-999999")):
        for suffix in ("", "/tasks"):
            hidden = _error(api.get(f"/v1/queues/{ref}{suffix}", headers=vendor), 404)
            absent = _error(api.get(f"/v1/queues/{missing}{suffix}", headers=vendor), 404)
            # The same answer as for a queue that does not exist: nothing to probe.
            assert hidden.replace(str(ref), "Q") == absent.replace(str(missing), "Q")

    # A draft is not the vendor's business yet: only pushed tasks are listed.
    assert api.get(f"/v1/queues/{own}/tasks", headers=vendor).json()["tasks"] == []
    key = _push_by_hand(own, task_id=881)
    tasks = api.get(f"/v1/queues/{own}/tasks", headers=vendor).json()
    [task] = tasks["tasks"]
    # Nothing that names the image, its batch or whether it is gold.
    assert set(task) == {
        "key",
        "status",
        "ls_task_id",
        "pushed_at",
        "media_url",
        "media_expires_at",
    }
    assert (tasks["queue_id"], task["key"], task["status"], task["ls_task_id"]) == (
        own,
        key,
        "draft",
        881,
    )
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    queue_view = api.get(f"/v1/queues/{own}", headers=vendor).json()
    assert (queue_view["gold"], queue_view["overlap"]) == (None, None)
    # The signed URL is the media route's: it needs no token, and only for this task.
    url = urlsplit(task["media_url"])
    assert url.path == f"/v1/media/t/{key}"
    media = api.get(f"{url.path}?{url.query}")
    assert media.status_code == 200 and media.headers["content-type"].startswith("image/")
    swapped = api.get(f"/v1/media/t/{'0' * 32}?{url.query}")
    assert swapped.status_code == 403
    staff = api.get(f"/v1/queues/{own}/tasks", headers=bearer(make_user("auditor"))).json()
    [seen] = staff["tasks"]
    assert (seen["image_id"], seen["key"], seen["is_gold"], seen["position"]) == (
        mine,
        key,
        False,
        0,
    )
    with session_scope() as session:
        from dataops.catalog.models import Image

        image = session.get(Image, mine)
        assert image is not None
        assert seen["sha256"] == image.sha256
    other_tasks = api.get(f"/v1/queues/{other}/tasks", headers=bearer(make_user("auditor")))
    assert [t["image_id"] for t in other_tasks.json()["tasks"]] == [theirs]
    assert (
        api.get(f"/v1/queues/{own}/tasks", params={"status": "sent"}, headers=vendor).json()[
            "tasks"
        ]
        == []
    )


def _push_by_hand(queue_id: int, *, task_id: int) -> str:
    """What a push records for the queue's one item: its task key and Label Studio task."""
    from sqlalchemy import select

    from dataops.db import utcnow
    from dataops.labeling import tasks
    from dataops.selection.models import Batch, BatchItem

    with session_scope() as session:
        item = session.scalars(
            select(BatchItem).join(Batch).where(Batch.queue_id == queue_id)
        ).one()
        [key] = tasks.ensure_keys(session, item.batch_id, queue_id).values()
        item.ls_task_id = task_id
        item.pushed_at = utcnow()
        return key


def test_bad_input_is_a_4xx_json_error(api: TestClient, ops: dict[str, str]) -> None:
    api.post("/v1/vendors", json={"name": "acme"}, headers=ops)
    text = (DIGITS / "v1.md").read_text(encoding="utf-8")
    api.post("/v1/guidelines", json={"name": "digits", "markdown": text}, headers=ops)

    _error(api.post("/v1/vendors", json={"name": "!!"}, headers=ops), 400)
    _error(api.post("/v1/vendors", json={"name": "12345"}, headers=ops), 400)
    _error(api.post("/v1/vendors", json={}, headers=ops), 422)
    _error(api.post("/v1/vendors", json={"name": "a\x00b"}, headers=ops), 422)
    assert "front matter" in _error(
        api.post(
            "/v1/guidelines", json={"name": "x", "markdown": "# no front matter"}, headers=ops
        ),
        400,
    )
    mismatch = api.post("/v1/guidelines", json={"name": "clothing", "markdown": text}, headers=ops)
    assert "'digits'" in _error(mismatch, 400)
    deep = "---\nname: " + "[" * 5000 + "]" * 5000 + "\n---\nbody\n"
    _error(api.post("/v1/guidelines", json={"name": "x", "markdown": deep}, headers=ops), 400)
    broken = text.replace("kind: classification", "kind: segmentation")
    _error(
        api.post("/v1/guidelines", json={"name": "digits", "markdown": broken}, headers=ops), 400
    )

    queue = {"name": "q", "vendor": "acme", "guideline": "digits:1"}
    _error(api.post("/v1/queues", json={**queue, "vendor": "nobody"}, headers=ops), 404)
    _error(api.post("/v1/queues", json={**queue, "vendor": 999999}, headers=ops), 404)
    _error(api.post("/v1/queues", json={**queue, "guideline": "digits:7"}, headers=ops), 404)
    _error(api.post("/v1/queues", json={**queue, "gold": 0.9}, headers=ops), 422)
    _error(api.post("/v1/queues", json={**queue, "due": "soon"}, headers=ops), 422)
    _error(api.post("/v1/queues", json={**queue, "due": "0d"}, headers=ops), 400)
    _error(api.post("/v1/queues", json={**queue, "connection": "elsewhere"}, headers=ops), 400)
    assert _events("queue.created") == []

    for ref in ("999999", "99999999999999999999", "\u00b2", "nobody"):
        _error(api.get(f"/v1/queues/{ref}", headers=ops), 404)
    _error(api.get("/v1/guidelines/digits:x", headers=ops), 422)
    _error(api.get("/v1/guidelines/nothing", headers=ops), 404)
    _error(api.get("/v1/queues/1/tasks", params={"limit": 0}, headers=ops), 422)


def test_push_and_pull_answer_202_with_a_sync_job(
    api: TestClient, ops: dict[str, str], tmp_path: Path
) -> None:
    from dataops.selection.models import Batch

    (image,) = ingest_files([write_photo(tmp_path / "p.jpg")])
    queue = make_queue("acme", [image])
    with session_scope() as session:
        batch = session.scalars(select(Batch).where(Batch.queue_id == queue)).one()
        batch_id = batch.id
        unqueued = Batch(purpose="audit", strategy="random")
        cancelled = Batch(purpose="audit", strategy="random", queue_id=queue, status="cancelled")
        session.add_all([unqueued, cancelled])
        session.flush()
        unqueued_id, cancelled_id = unqueued.id, cancelled.id

    pushed = api.post(f"/v1/batches/{batch_id}/push", params={"page_size": 10}, headers=ops)
    assert pushed.status_code == 202, pushed.text
    job = api.get(pushed.json()["status_url"], headers=ops).json()
    assert (job["kind"], job["created_by"]) == ("sync", "user:ops")
    assert job["params"] == {"action": "push", "batch_id": batch_id, "page_size": 10}
    # Label Studio is not configured in this test, so the job itself reports why it failed.
    assert job["status"] == "failed" and "not configured" in job["error"]

    pulled = api.post(f"/v1/queues/{queue}/pull", params={"full": True}, headers=ops)
    assert pulled.status_code == 202, pulled.text
    job = api.get(pulled.json()["status_url"], headers=ops).json()
    assert job["params"] == {"action": "pull", "queue_id": queue, "full": True, "page_size": 100}

    _error(api.post("/v1/batches/999999/push", headers=ops), 404)
    _error(api.post(f"/v1/batches/{cancelled_id}/push", headers=ops), 409)
    _error(api.post(f"/v1/batches/{unqueued_id}/push", headers=ops), 409)
    _error(api.post(f"/v1/batches/{batch_id}/push", params={"page_size": 0}, headers=ops), 422)
    _error(api.post("/v1/queues/nobody/pull", headers=ops), 404)
    jobs = api.get("/v1/jobs", params={"kind": "sync"}, headers=ops).json()["jobs"]
    assert len(jobs) == 2


def test_annotators_are_mapped_and_listed(api: TestClient, ops: dict[str, str]) -> None:
    api.post("/v1/vendors", json={"name": "acme"}, headers=ops)
    mapping = {"connection": "default", "vendor": "acme", "email": "Alice@Acme.example"}
    made = api.post("/v1/annotators", json={**mapping, "ls_user_id": 17}, headers=ops)
    assert made.status_code == 200, made.text
    body = made.json()
    assert (body["email"], body["ls_user_id"], body["vendor"], body["mapped_by"]) == (
        "alice@acme.example",
        17,
        "acme",
        "manual",
    )
    again = api.post("/v1/annotators", json={**mapping, "ls_user_id": 17}, headers=ops)
    assert again.json()["id"] == body["id"]
    clash = api.post("/v1/annotators", json={**mapping, "ls_user_id": 18}, headers=ops)
    _error(clash, 409)
    _error(
        api.post(
            "/v1/annotators", json={**mapping, "vendor": "nobody", "ls_user_id": 3}, headers=ops
        ),
        404,
    )
    _error(
        api.post(
            "/v1/annotators",
            json={**mapping, "connection": "elsewhere", "ls_user_id": 3},
            headers=ops,
        ),
        400,
    )
    listed = api.get("/v1/annotators", params={"vendor": "acme"}, headers=ops).json()
    assert [a["id"] for a in listed] == [body["id"]]
    assert api.get("/v1/annotators", params={"connection": "other"}, headers=ops).json() == []


@pytest.mark.slow
@pytest.mark.labelstudio
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_push_and_pull_through_the_api_with_label_studio(
    api: TestClient,
    ops: dict[str, str],
    image_dir: Path,
    labelstudio: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataops.labelstudio.client import LabelStudioClient
    from tests.integration.test_ls_sync import choice, make_world, use_labelstudio

    use_labelstudio(monkeypatch, labelstudio.url, labelstudio.admin_token)
    world = make_world(image_dir, items=3, overlap=0.0, gold=0.0, gold_pool=0)
    pushed = api.post(f"/v1/batches/{world.batch_id}/push", headers=ops)
    assert pushed.status_code == 202
    job = api.get(pushed.json()["status_url"], headers=ops).json()
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["created"] == 3

    tasks = api.get(f"/v1/queues/{world.queue_id}/tasks", headers=ops).json()["tasks"]
    assert len(tasks) == 3 and all(t["ls_task_id"] is not None for t in tasks)
    assert {t["status"] for t in tasks} == {"sent"}
    with LabelStudioClient.connect(labelstudio.url, labelstudio.annotator_tokens[0]) as annotator:
        for task in tasks:
            annotator.create_annotation(task["ls_task_id"], choice("Pants"))

    pulled = api.post(f"/v1/queues/{world.queue_id}/pull", headers=ops)
    assert pulled.status_code == 202
    job = api.get(pulled.json()["status_url"], headers=ops).json()
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["created"] == 3
    labels = api.get("/v1/labels", params={"batch": world.batch_id}, headers=ops).json()
    assert sorted(label["image_id"] for label in labels) == sorted(t["image_id"] for t in tasks)
    assert {(label["guideline"], label["payload"]["class"]) for label in labels} == {
        ("garments:1", "Pants")
    }


def test_label_import_is_all_or_nothing(
    api: TestClient, ops: dict[str, str], make_user: MakeUser, tmp_path: Path
) -> None:
    text = (DIGITS / "v1.md").read_text(encoding="utf-8")
    assert api.post(
        "/v1/guidelines", json={"name": "digits", "markdown": text}, headers=ops
    ).is_success
    first, second = ingest_files([write_photo(tmp_path / f"d{i}.jpg", seed=i) for i in (1, 2)])
    images = [api.get(f"/v1/images/{i}", headers=ops).json() for i in (first, second)]
    good = "image,annotator,label\n" + "".join(
        f"{image['sha256']},curator,{digit}\n" for image, digit in zip(images, "37", strict=True)
    )
    body = {"format": "csv", "content": good, "accept": True, "guideline": "digits"}
    imported = api.post("/v1/labels/import", json=body, headers=ops)
    assert imported.status_code == 200, imported.text
    assert (imported.json()["created"], imported.json()["errors"]) == (2, [])
    again = api.post("/v1/labels/import", json=body, headers=ops).json()
    assert (again["created"], again["existing"]) == (0, 2)
    labels = api.get("/v1/labels", headers=ops).json()
    assert sorted((lv["image_id"], lv["payload"]["class"], lv["status"]) for lv in labels) == [
        (first, "3", "accepted"),
        (second, "7", "accepted"),
    ]
    digest = hashlib.sha256(good.encode()).hexdigest()
    assert _events("labels.imported") == [("user:ops", digest)] * 2

    # One good row, a class the guideline lacks, an image nobody ingested: nothing is stored.
    bad = (
        "image,annotator,label\n"
        f"{images[0]['sha256']},second-opinion,5\n"
        f"{images[1]['sha256']},second-opinion,eleven\n"
        f"{'0' * 64},second-opinion,4\n"
    )
    rejected = api.post("/v1/labels/import", json={**body, "content": bad}, headers=ops)
    _error(rejected, 422)
    details = rejected.json()["error"]["details"]
    assert [(d["line"], d["field"]) for d in details] == [(3, "label"), (4, "image")], details
    assert len(api.get("/v1/labels", headers=ops).json()) == 2

    vendor = bearer(make_user("vendor", name="acme-bot", vendor="acme"))
    _error(api.post("/v1/labels/import", json=body, headers=vendor), 403)
    _error(api.post("/v1/labels/import", json={**body, "format": "xml"}, headers=ops), 422)
