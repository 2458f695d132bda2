"""`dataops.jobs.dispatch`: the one way a job starts, embedded or through a broker.

The broker side is the module named by ``dispatch.BROKER``; these tests point it at a
recording stand-in, so no Redis is needed to see what would be sent where.
"""

from __future__ import annotations

import subprocess
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dataops.jobs import dispatch
from dataops.jobs.context import JobContext


class RecordingBroker(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("recording_broker")
        self.sent: list[tuple[str, list[Any], str]] = []
        self.checked: list[str] = []

    def send(self, task_name: str, args: Sequence[Any], queue: str) -> None:
        self.sent.append((task_name, list(args), queue))

    def check(self, url: str) -> None:
        self.checked.append(url)

    def is_broker_error(self, exc: BaseException) -> bool:
        return False


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch, isolated_env: Path) -> RecordingBroker:
    from dataops import migrate
    from dataops.config import reset_settings

    fake = RecordingBroker()
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    monkeypatch.setattr(dispatch, "BROKER", fake.__name__)
    monkeypatch.setenv("DATAOPS_DATABASE_URL", f"sqlite:///{isolated_env / 'catalog.db'}")
    monkeypatch.setenv("DATAOPS_BROKER_URL", "redis://broker.invalid:6379/0")
    reset_settings()
    migrate.upgrade()
    return fake


def test_with_a_broker_a_job_is_recorded_then_its_id_is_queued(broker: RecordingBroker) -> None:
    from dataops.db import session_scope
    from dataops.jobs import service

    job = dispatch.submit("manifest", {"name": "m"}, actor="test")

    assert broker.checked == ["redis://broker.invalid:6379/0"]
    assert broker.sent == [("dataops.manifest.run", [job.id], "manifest")]
    with session_scope() as session:
        assert service.get_job(session, job.id).status == "pending"


def test_send_hands_other_messages_to_the_broker(broker: RecordingBroker) -> None:
    dispatch.send("dataops.dedup.shard", ["run-1", 3], "dedup")
    assert broker.sent == [("dataops.dedup.shard", ["run-1", 3], "dedup")]


def echo(ctx: JobContext) -> dict[str, Any]:
    """A job handler for these tests: its result is its params."""
    return dict(ctx.params)


def test_without_a_broker_start_runs_the_job_here(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataops import migrate
    from dataops.config import reset_settings
    from dataops.db import session_scope
    from dataops.jobs import service
    from dataops.jobs.registry import HANDLERS

    monkeypatch.setitem(HANDLERS, "manifest", f"{__name__}:echo")
    monkeypatch.setenv("DATAOPS_DATABASE_URL", f"sqlite:///{isolated_env / 'catalog.db'}")
    reset_settings()
    migrate.upgrade()
    with session_scope() as session:
        job = service.create_job(session, "manifest", {"name": "m"}, "test")

    finished = dispatch.start(job)

    assert (finished.status, finished.result) == ("succeeded", {"name": "m"})
    assert dispatch.queued_job_ids() is None


def test_importing_dataops_loads_no_broker_library() -> None:
    """Celery and kombu load only when a message is sent (from `workers/`)."""
    code = (
        "import sys, dataops.cli, dataops.api.app, dataops.jobs.dispatch, dataops.jobs.recovery;"
        "print(','.join(m for m in ('celery', 'kombu', 'workers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_job_kind_names_a_handler_and_a_queue() -> None:
    """Handlers are import strings, invisible to the import graph: each must resolve."""
    from dataops.jobs.registry import HANDLERS, QUEUES, handler_for

    assert set(HANDLERS) == set(QUEUES)
    for kind in HANDLERS:
        assert callable(handler_for(kind)), kind


def test_the_broker_entry_point_is_importable() -> None:
    import importlib

    broker = importlib.import_module(dispatch.BROKER)
    names = (
        "send",
        "check",
        "is_broker_error",
        "queued_job_ids",
        "queue_consumers",
        "queue_lengths",
    )
    for name in names:
        assert callable(getattr(broker, name)), name
