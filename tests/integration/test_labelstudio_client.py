"""The Label Studio client against a real Label Studio 1.23 server."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest

from dataops.labelstudio.client import (
    LabelStudioClient,
    normalise_annotation,
    parse_timestamp,
    prediction_result,
)
from dataops.labelstudio.config import label_config
from dataops.labelstudio.errors import LabelStudioError, LabelStudioUnavailable
from tests.support.labelstudio import (
    ADMIN_EMAIL,
    LabelStudioInstance,
    free_port,
)

CLASSES = ["helmet", "person", "no & <helmet>"]
KEY = "dataops_item"


def _key(n: int) -> str:
    return hashlib.sha256(f"item-{n}".encode()).hexdigest()


def _task(n: int) -> dict[str, Any]:
    return {
        "data": {"image": f"http://127.0.0.1:9/images/{n}.jpg", KEY: _key(n)},
        "predictions": [
            {
                "model_version": "clf-1",
                "score": 0.7,
                "result": prediction_result("classification", label="helmet", score=0.7),
            }
        ],
    }


@pytest.fixture(scope="module")
def admin(labelstudio: LabelStudioInstance) -> Iterator[LabelStudioClient]:
    with LabelStudioClient.connect(labelstudio.url, labelstudio.admin_token) as client:
        yield client


@pytest.fixture(scope="module")
def annotators(labelstudio: LabelStudioInstance) -> Iterator[list[LabelStudioClient]]:
    clients = [LabelStudioClient.connect(labelstudio.url, t) for t in labelstudio.annotator_tokens]
    yield clients
    for client in clients:
        client.close()


@pytest.fixture
def project(admin: LabelStudioClient, request: pytest.FixtureRequest) -> int:
    return admin.create_project(
        request.node.name[:50], label_config("classification", CLASSES), maximum_annotations=2
    )


def _choice(name: str) -> list[dict[str, Any]]:
    return prediction_result("classification", label=name)


# --- against the session's server ---------------------------------------------------------


@pytest.mark.labelstudio
def test_tokens_act_as_distinct_users(
    labelstudio: LabelStudioInstance,
    admin: LabelStudioClient,
    annotators: list[LabelStudioClient],
) -> None:
    assert admin.whoami()["email"] == ADMIN_EMAIL
    emails = [client.whoami()["email"] for client in annotators]
    assert emails == list(labelstudio.annotator_emails)
    listed = {user["email"] for user in admin.list_users()}
    assert {ADMIN_EMAIL, *labelstudio.annotator_emails} <= listed


@pytest.mark.labelstudio
def test_project_keeps_the_generated_config(admin: LabelStudioClient, project: int) -> None:
    stored = admin.get_project(project)
    assert stored["id"] == project
    assert stored["maximum_annotations"] == 2
    assert "no &amp; &lt;helmet&gt;" in stored["label_config"]


@pytest.mark.labelstudio
def test_import_pages_and_find_by_key(admin: LabelStudioClient, project: int) -> None:
    imported: dict[str, int] = {}
    for page in range(3):
        numbers = range(page * 150, page * 150 + 150)
        ids = admin.import_tasks(project, [_task(n) for n in numbers])
        assert len(ids) == len(set(ids)) == 150
        imported.update(zip((_key(n) for n in numbers), ids, strict=True))

    # A few keys go through filters (64-character keys need several requests); all 450 are
    # cheaper to find by listing the project. Both must give the same answer.
    some = [_key(n) for n in range(0, 450, 3)]
    assert admin.find_tasks_by_key(project, KEY, [*some, "absent"]) == {
        key: imported[key] for key in some
    }
    assert admin.find_tasks_by_key(project, KEY, [*imported, "absent"]) == imported

    tasks = list(admin.list_tasks(project, page_size=200))
    assert len(tasks) == 450
    assert {task["data"][KEY]: task["id"] for task in tasks} == imported
    first = tasks[0]
    assert first["predictions"][0]["model_version"] == "clf-1"
    assert first["updated_at"].tzinfo is not None


@pytest.mark.labelstudio
def test_find_by_key_prefers_the_oldest_duplicate(admin: LabelStudioClient, project: int) -> None:
    [first] = admin.import_tasks(project, [_task(1)])
    [again] = admin.import_tasks(project, [_task(1)])
    assert again != first
    assert admin.find_tasks_by_key(project, KEY, [_key(1)]) == {_key(1): first}
    assert admin.find_tasks_by_key(project, KEY, []) == {}


@pytest.mark.labelstudio
def test_annotations_are_attributed_to_the_authenticated_user(
    labelstudio: LabelStudioInstance,
    admin: LabelStudioClient,
    annotators: list[LabelStudioClient],
    project: int,
) -> None:
    first, second = annotators
    first_id, second_id = (client.whoami()["id"] for client in annotators)
    [task_id] = admin.import_tasks(project, [_task(7)])

    first.create_annotation(task_id, _choice("helmet"), lead_time=2.5)
    second.create_annotation(task_id, _choice("person"))
    # completed_by is stored as sent: the second annotator claims to be the first.
    spoofed = httpx.post(
        f"{labelstudio.url}/api/tasks/{task_id}/annotations/",
        headers={"Authorization": f"Token {labelstudio.annotator_tokens[1]}"},
        json={"result": _choice("no & <helmet>"), "completed_by": first_id},
        timeout=30,
    )
    assert spoofed.status_code == 201, spoofed.text

    [task] = list(admin.list_tasks(project))
    versions = sorted(
        (normalise_annotation(a, "classification") for a in task["annotations"]),
        key=lambda version: version["annotation_id"],
    )
    assert [(v["payload"]["class"], v["ls_user_id"]) for v in versions] == [
        ("helmet", first_id),
        ("person", second_id),
        ("no & <helmet>", second_id),
    ]
    assert versions[2]["completed_by"] == first_id
    assert all(v["task_id"] == task_id and not v["cancelled"] for v in versions)


@pytest.mark.labelstudio
def test_incremental_listing_from_a_cursor(
    admin: LabelStudioClient, annotators: list[LabelStudioClient], project: int
) -> None:
    ids = admin.import_tasks(project, [_task(n) for n in range(5)])
    everything = list(admin.list_tasks(project, page_size=2))
    stamps = [task["updated_at"] for task in everything]
    assert stamps == sorted(stamps)
    cursor = max(stamps)

    # The cursor is inclusive: the newest task comes back, nothing older.
    again = list(admin.list_tasks(project, cursor))
    assert {task["id"] for task in again} == {everything[-1]["id"]}

    annotation = annotators[0].create_annotation(ids[1], _choice("person"))
    changed = {task["id"]: task for task in admin.list_tasks(project, cursor)}
    assert ids[1] in changed
    assert set(changed) <= {ids[1], everything[-1]["id"]}
    [seen] = changed[ids[1]]["annotations"]
    assert seen["id"] == annotation["id"]
    assert seen["updated_at"] == annotation["updated_at"]
    assert changed[ids[1]]["updated_at"] > cursor


@pytest.mark.labelstudio
def test_update_bumps_updated_at_and_delete_empties_the_task(
    admin: LabelStudioClient, annotators: list[LabelStudioClient], project: int
) -> None:
    [task_id] = admin.import_tasks(project, [_task(11)])
    created = annotators[0].create_annotation(task_id, _choice("helmet"))
    [before] = list(admin.list_tasks(project))

    updated = annotators[0].update_annotation(created["id"], _choice("person"))
    assert updated["id"] == created["id"]
    assert updated["updated_at"] > created["updated_at"]
    [after] = list(admin.list_tasks(project, before["updated_at"]))
    assert after["updated_at"] > before["updated_at"]
    version = normalise_annotation(after["annotations"][0], "classification")
    assert version["payload"] == {"class": "person"}
    assert version["updated_at"] == updated["updated_at"]

    annotators[0].delete_annotation(created["id"])
    [deleted] = list(admin.list_tasks(project, after["updated_at"]))
    assert deleted["id"] == task_id
    assert deleted["annotations"] == []
    with pytest.raises(LabelStudioError) as refused:
        annotators[0].delete_annotation(created["id"])
    assert refused.value.ls_status == 404
    assert not isinstance(refused.value, LabelStudioUnavailable)


@pytest.mark.labelstudio
def test_detection_boxes_round_trip(
    admin: LabelStudioClient, annotators: list[LabelStudioClient]
) -> None:
    project = admin.create_project("boxes", label_config("detection", ["person", "helmet"]))
    [task_id] = admin.import_tasks(project, [{"data": {"image": "http://127.0.0.1:9/a.jpg"}}])
    boxes = [
        {"class": "person", "x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4},
        {"class": "helmet", "x": 0.5, "y": 0.0, "w": 0.5, "h": 0.25},
    ]
    annotators[1].create_annotation(task_id, prediction_result("detection", boxes=boxes))
    [task] = list(admin.list_tasks(project))
    got = normalise_annotation(task["annotations"][0], "detection")["payload"]["boxes"]
    assert [b["class"] for b in got] == ["person", "helmet"]
    for expected, actual in zip(boxes, got, strict=True):
        for field in ("x", "y", "w", "h"):
            assert actual[field] == pytest.approx(expected[field])


@pytest.mark.labelstudio
def test_webhook_delivers_the_secret_header(
    admin: LabelStudioClient, annotators: list[LabelStudioClient], project: int
) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers.get("X-Dataops-Secret"), json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=hook.serve_forever, daemon=True)
    thread.start()
    try:
        webhook_id = admin.create_webhook(
            project, f"http://127.0.0.1:{hook.server_port}/hook", ("X-Dataops-Secret", "s3cret")
        )
        assert webhook_id > 0
        [task_id] = admin.import_tasks(project, [_task(21)])
        annotators[0].create_annotation(task_id, _choice("helmet"))
    finally:
        hook.shutdown()
        hook.server_close()
    actions = {payload["action"]: secret for secret, payload in received}
    assert actions.get("ANNOTATION_CREATED") == "s3cret"


@pytest.mark.labelstudio
def test_refusals_carry_the_server_message(
    labelstudio: LabelStudioInstance, admin: LabelStudioClient
) -> None:
    with pytest.raises(LabelStudioError) as missing:
        admin.get_project(987654)
    assert missing.value.ls_status == 404
    assert labelstudio.url in str(missing.value)

    with pytest.raises(LabelStudioError) as bad_token:
        LabelStudioClient.connect(labelstudio.url, "0" * 40)
    assert bad_token.value.ls_status == 401
    assert not isinstance(bad_token.value, LabelStudioUnavailable)

    with pytest.raises(LabelStudioError) as bad_config:
        admin.create_project("broken", "<View><Choices name='x'/></View>")
    assert bad_config.value.ls_status == 400
    assert str(bad_config.value).strip()


# --- outages ------------------------------------------------------------------------------


def test_closed_port_gives_up_after_bounded_attempts(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    token = "f" * 40
    client = LabelStudioClient(f"http://127.0.0.1:{port}", token, max_attempts=3, backoff=0.01)
    with caplog.at_level(logging.WARNING), pytest.raises(LabelStudioUnavailable) as down:
        client.whoami()
    assert down.value.attempts == 3
    assert f"127.0.0.1:{port}" in str(down.value)
    assert token not in str(down.value)
    assert len([r for r in caplog.records if "retry" in r.getMessage()]) == 2
    assert token not in caplog.text


def test_closed_port_honours_the_total_wait_bound() -> None:
    client = LabelStudioClient(
        f"http://127.0.0.1:{free_port()}", "f" * 40, max_attempts=50, backoff=1.0, max_wait=1.5
    )
    with pytest.raises(LabelStudioUnavailable) as down:
        client.whoami()
    assert down.value.attempts < 50


@pytest.mark.labelstudio
def test_stopped_server_is_unavailable_and_comes_back_after_restart(
    labelstudio: LabelStudioInstance,
) -> None:
    server = labelstudio.server
    client = LabelStudioClient.connect(
        labelstudio.url, labelstudio.admin_token, max_attempts=3, backoff=0.01
    )
    project = client.create_project("survives restarts", label_config("detection", ["a"]))
    ids = client.import_tasks(project, [_task(1), _task(2)])
    patient = LabelStudioClient(
        labelstudio.url, labelstudio.admin_token, max_attempts=100, max_wait=120, max_backoff=0.5
    )

    server.stop()
    try:
        with pytest.raises(LabelStudioUnavailable) as down:
            client.get_project(project)
        assert down.value.attempts == 3
        with pytest.raises(LabelStudioUnavailable) as not_sent:
            client.import_tasks(project, [_task(3)])
        assert labelstudio.url in str(not_sent.value)

        # An idempotent call made during the outage succeeds once the server is back.
        restarter = threading.Thread(target=server.start)
        restarter.start()
        assert patient.get_project(project)["id"] == project
        restarter.join()
    finally:
        if not server.running:
            server.start()
    assert server.url == labelstudio.url
    assert client.find_tasks_by_key(project, KEY, [_key(1), _key(2), _key(3)]) == {
        _key(1): ids[0],
        _key(2): ids[1],
    }

    # Connections pooled before the restart are dead; even a call that is never retried
    # once it may have reached the server must go through on a fresh one.
    server.restart()
    assert len(client.import_tasks(project, [_task(4)])) == 1


# --- pure conversions ---------------------------------------------------------------------


def test_parse_timestamp_accepts_both_sdk_forms() -> None:
    expected = datetime(2026, 11, 26, 1, 19, 51, 173807, tzinfo=UTC)
    assert parse_timestamp("2026-11-26T01:19:51.173807Z") == expected
    assert parse_timestamp(expected.replace(tzinfo=None)) == expected
    assert parse_timestamp("2026-11-26T02:19:51.173807+01:00") == expected


def test_normalise_clamps_overhanging_boxes_and_reports_skips() -> None:
    annotation = {
        "id": 5,
        "task": 9,
        "completed_by": 3,
        "updated_by": 4,
        "updated_at": "2026-11-26T01:19:51.173807Z",
        "result": [
            {
                "from_name": "label",
                "to_name": "image",
                "type": "rectanglelabels",
                "value": {
                    "x": -0.5,
                    "y": 90.0,
                    "width": 50.0,
                    "height": 10.5,
                    "rotation": 0,
                    "rectanglelabels": ["person"],
                },
            }
        ],
    }
    version = normalise_annotation(annotation, "detection")
    [box] = version["payload"]["boxes"]
    assert box["class"] == "person"
    assert [box["x"], box["y"], box["w"], box["h"]] == pytest.approx([0.0, 0.9, 0.495, 0.1])
    assert (version["ls_user_id"], version["completed_by"]) == (4, 3)

    skipped = {**annotation, "result": [], "was_cancelled": True}
    assert normalise_annotation(skipped, "classification")["payload"] == {"class": None}
    assert normalise_annotation(skipped, "classification")["cancelled"] is True


def test_label_config_refuses_ambiguous_classes() -> None:
    with pytest.raises(ValueError, match="unique"):
        label_config("classification", ["a", "a"])
    with pytest.raises(ValueError, match="at least one"):
        label_config("detection", [])
    with pytest.raises(ValueError, match=r"\$"):
        label_config("detection", ["$image"])


class _FakeProject:
    """Label Studio's task listing semantics: ``updated_at >=`` filter, ordered, paged."""

    def __init__(self, stamps: dict[int, datetime]) -> None:
        self.stamps = stamps
        self.requests = 0

    def page(
        self, project_id: int, page: int, page_size: int, query: dict[str, Any], fields: str
    ) -> list[dict[str, Any]]:
        self.requests += 1
        rows = sorted(self.stamps.items(), key=lambda row: (row[1], row[0]))
        for item in query.get("filters", {}).get("items", []):
            since = parse_timestamp(item["value"])
            rows = [row for row in rows if row[1] >= since]
        chunk = rows[(page - 1) * page_size : page * page_size]
        return [{"id": task_id, "updated_at": stamp, "annotations": []} for task_id, stamp in chunk]


def _offline_client(fake: _FakeProject, monkeypatch: pytest.MonkeyPatch) -> LabelStudioClient:
    client = LabelStudioClient(f"http://127.0.0.1:{free_port()}", "f" * 40)
    monkeypatch.setattr(client, "task_page", fake.page)  # the one request the paging builds on
    return client


def test_listing_pages_through_identical_timestamps(monkeypatch: pytest.MonkeyPatch) -> None:
    same = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    fake = _FakeProject({task_id: same for task_id in range(1, 8)})
    seen = [task["id"] for task in _offline_client(fake, monkeypatch).list_tasks(1, page_size=3)]
    assert sorted(seen) == list(range(1, 8))


def test_listing_misses_nothing_when_tasks_change_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    fake = _FakeProject({task_id: start.replace(second=task_id) for task_id in range(1, 11)})
    listing = _offline_client(fake, monkeypatch).list_tasks(1, page_size=3)
    seen = [next(listing)["id"] for _ in range(3)]
    # Page-number paging would now skip task 4: task 2 moves to the end of the ordering.
    fake.stamps[2] = start.replace(minute=5)
    seen += [task["id"] for task in listing]
    assert set(seen) == set(range(1, 11))
    assert seen.count(2) == 2
