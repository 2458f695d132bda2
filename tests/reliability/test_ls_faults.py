"""Label Studio going down or failing mid-sync: clear errors, failed jobs, clean resumes.

These tests stop and break their own private server, so the session's server stays up.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from dataops.db import session_scope
from dataops.labelstudio.client import LabelStudioClient, prediction_result
from dataops.labelstudio.errors import LabelStudioUnavailable
from tests.support.labelstudio import LabelStudioServer

CLASSES = ["cat", "dog"]

pytestmark = pytest.mark.labelstudio


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[LabelStudioServer, str]]:
    """A private Label Studio with one annotator account: (server, annotator token)."""
    with LabelStudioServer.from_template() as private:
        yield private, private.create_user("vendor1@dataops.test")


@pytest.fixture
def live(server: tuple[LabelStudioServer, str]) -> Iterator[LabelStudioServer]:
    """The private server, running again after the test whatever the test did to it."""
    yield server[0]
    if not server[0].running:
        server[0].start()


def use(monkeypatch: pytest.MonkeyPatch, url: str, token: str) -> None:
    from dataops.config import reset_settings

    monkeypatch.setenv("DATAOPS_LABELSTUDIO_URL", url)
    monkeypatch.setenv("DATAOPS_LABELSTUDIO_TOKEN", token)
    reset_settings()


def make_batch(image_dir: Path, items: int = 10) -> int:
    """A draft batch of `items` images in a classification queue."""
    from dataops.catalog.ingest import ingest
    from dataops.catalog.models import Image
    from dataops.labeling import service as labeling
    from dataops.labeling.models import Guideline
    from dataops.labelstudio.config import label_config
    from dataops.selection.models import Batch, BatchItem

    ingest([str(image_dir)], transaction=session_scope)
    with session_scope() as session:
        images = list(session.scalars(select(Image).where(Image.status == "ok").order_by(Image.id)))
        labeling.create_vendor(session, "acme")
        session.add(
            Guideline(
                name="pets",
                version=1,
                sha256=hashlib.sha256(b"pets v1").hexdigest(),
                kind="classification",
                classes=CLASSES,
                body="Cat or dog.",
                label_config=label_config("classification", CLASSES),
            )
        )
        session.flush()
        queue, _ = labeling.create_queue(session, "acme-pets", vendor="acme", guideline="pets:1")
        batch = Batch(purpose="active_learning", strategy="random", queue_id=queue.id)
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
        return batch.id


def submit(params: dict[str, Any]) -> Any:
    from dataops.jobs import dispatch

    return dispatch.submit("sync", params, actor="test:faults")


def last_job() -> Any:
    from dataops.jobs.models import Job

    with session_scope() as session:
        return session.scalars(select(Job).order_by(Job.created_at.desc()).limit(1)).one()


def summary(batch_id: int) -> dict[str, Any]:
    from dataops.selection.lifecycle import batch_summary

    with session_scope() as session:
        return batch_summary(session, batch_id)


def label_versions() -> int:
    from dataops.labeling.models import LabelVersion

    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(LabelVersion)) or 0


def project_tasks(url: str, token: str, project: int) -> list[dict[str, Any]]:
    with LabelStudioClient.connect(url, token) as client:
        return list(client.list_tasks(project))


def test_push_resumes_after_label_studio_stopped_mid_push(
    pg_catalog: str,
    image_dir: Path,
    live: LabelStudioServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use(monkeypatch, live.url, live.admin_token)
    batch_id = make_batch(image_dir)
    original = LabelStudioClient.import_tasks
    pages: list[int] = []

    def stop_before_second_page(
        self: LabelStudioClient, project_id: int, tasks: list[dict[str, Any]]
    ) -> list[int]:
        pages.append(len(tasks))
        if len(pages) == 2:
            live.stop()
        return original(self, project_id, tasks)

    monkeypatch.setattr(LabelStudioClient, "import_tasks", stop_before_second_page)
    with pytest.raises(LabelStudioUnavailable) as down:
        submit({"action": "push", "batch_id": batch_id, "page_size": 4})
    assert live.url in str(down.value)
    assert "unavailable" in str(down.value)
    failed = last_job()
    assert failed.status == "failed"
    assert live.url in failed.error
    stopped = summary(batch_id)
    assert (stopped["status"], stopped["tasks"]) == ("draft", 4)

    live.start()
    monkeypatch.setattr(LabelStudioClient, "import_tasks", original)
    resumed = submit({"action": "push", "batch_id": batch_id, "page_size": 4})
    assert resumed.status == "succeeded"
    assert resumed.result["created"] == 6
    assert resumed.result["status"] == "sent"
    tasks = project_tasks(live.url, live.admin_token, resumed.result["ls_project_id"])
    assert len(tasks) == 10
    assert len({task["data"]["dataops_item"] for task in tasks}) == 10


def test_pull_resumes_after_label_studio_stopped_mid_pull(
    pg_catalog: str,
    image_dir: Path,
    live: LabelStudioServer,
    server: tuple[LabelStudioServer, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataops.labelstudio import pull as sync

    use(monkeypatch, live.url, live.admin_token)
    batch_id = make_batch(image_dir)
    project = submit({"action": "push", "batch_id": batch_id}).result["ls_project_id"]
    with LabelStudioClient.connect(live.url, server[1]) as annotator:
        for task in project_tasks(live.url, live.admin_token, project):
            annotator.create_annotation(
                task["id"], prediction_result("classification", label="dog")
            )

    original = sync.pull_page
    pages: list[int] = []

    def stop_after_first_page(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        pages.append(1)
        if len(pages) == 1:
            live.stop()

    monkeypatch.setattr(sync, "pull_page", stop_after_first_page)
    with pytest.raises(LabelStudioUnavailable) as down:
        submit({"action": "pull", "batch_id": batch_id, "page_size": 3})
    assert live.url in str(down.value)
    assert last_job().status == "failed"
    assert label_versions() == 3  # the committed first page

    live.start()
    monkeypatch.setattr(sync, "pull_page", original)
    resumed = submit({"action": "pull", "batch_id": batch_id, "page_size": 3})
    assert resumed.result["created"] == 7
    assert resumed.result["batch"]["status"] == "delivered"
    assert label_versions() == 10
    everything = submit({"action": "pull", "batch_id": batch_id, "full": True}).result
    assert (everything["created"], everything["existing"]) == (0, 10)
    assert label_versions() == 10


class FaultyProxy:
    """A loopback proxy that answers 500 instead of forwarding, or after forwarding."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.fail_before: dict[tuple[str, str], int] = {}
        self.fail_after: dict[tuple[str, str], int] = {}
        self.served_500: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy._take(proxy.fail_before, self.command, self.path):
                    self._fail()
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("authorization", "content-type", "accept")
                }
                with httpx.Client(timeout=60) as http:
                    answer = http.request(
                        self.command, proxy.upstream + self.path, content=body, headers=headers
                    )
                if proxy._take(proxy.fail_after, self.command, self.path):
                    self._fail()
                    return
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "text/plain"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def _fail(self) -> None:
                payload = json.dumps({"detail": "injected failure"}).encode()
                proxy.served_500.append(f"{self.command} {self.path.split('?')[0]}")
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _relay

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _take(self, faults: dict[tuple[str, str], int], method: str, path: str) -> bool:
        with self._lock:
            for (want_method, fragment), left in faults.items():
                if left > 0 and method == want_method and fragment in path:
                    faults[(want_method, fragment)] = left - 1
                    return True
        return False

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_server_errors_are_retried_and_a_lost_import_is_not_duplicated(
    pg_catalog: str,
    image_dir: Path,
    live: LabelStudioServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch_id = make_batch(image_dir)
    with FaultyProxy(live.url) as proxy:
        use(monkeypatch, proxy.url, live.admin_token)
        # Two failed look-ups (safe to repeat: retried with backoff), then an import that
        # Label Studio applies but whose answer is a 500 (never repeated blindly).
        proxy.fail_before[("GET", "/api/tasks")] = 2
        proxy.fail_after[("POST", "/import")] = 1
        with caplog.at_level(logging.WARNING), pytest.raises(LabelStudioUnavailable) as lost:
            submit({"action": "push", "batch_id": batch_id, "page_size": 4})
        assert "may have been applied" in str(lost.value)
        assert proxy.url in str(lost.value)
        retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
        assert len(retries) == 2
        assert all("HTTP 500" in message for message in retries)
        assert [m.split()[0] for m in proxy.served_500] == ["GET", "GET", "POST"]
        assert proxy.served_500[-1].endswith("/import")
        assert summary(batch_id)["tasks"] == 0

        resumed = submit({"action": "push", "batch_id": batch_id, "page_size": 4})
    assert resumed.status == "succeeded"
    assert (resumed.result["created"], resumed.result["existing"]) == (6, 4)
    tasks = project_tasks(live.url, live.admin_token, resumed.result["ls_project_id"])
    assert len(tasks) == 10
    assert len({task["data"]["dataops_item"] for task in tasks}) == 10
