"""Submit and execute jobs; the same `execute` runs in-process and inside a Celery task."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from dataops.config import get_settings
from dataops.db import session_scope
from dataops.errors import DataopsError
from dataops.jobs import service
from dataops.jobs.errors import BrokerUnavailable
from dataops.jobs.models import FAILED, SUCCEEDED, Job
from dataops.jobs.registry import QUEUES, handler_for, task_name

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, str], None]


@dataclass
class JobContext:
    """What a job handler gets: its id, params, sessions and a progress reporter."""

    job_id: str
    params: dict[str, Any]
    actor: str | None
    on_progress: ProgressCallback | None = None
    _last_write: float = field(default=0.0, repr=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope() as session:
            yield session

    def progress(self, done: int, total: int, message: str = "", *, force: bool = False) -> None:
        """Report progress; the job row is updated at most twice a second."""
        if self.on_progress is not None:
            self.on_progress(done, total, message)
        now = time.monotonic()
        if force or done >= total or now - self._last_write > 0.5:
            self._last_write = now
            with session_scope() as session:
                service.set_progress(session, self.job_id, done, total)


def check_broker(url: str) -> None:
    """Fail fast with one clear line instead of queueing into the void."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:  # kombu raises transport-specific errors
        raise BrokerUnavailable(f"cannot reach the broker at {_redact(url)}: {exc}") from exc


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def submit(
    kind: str,
    params: dict[str, Any],
    *,
    actor: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> Job:
    """Record a job, then run it here (embedded) or hand its id to a worker queue."""
    settings = get_settings()
    if settings.broker_url:
        check_broker(settings.broker_url)
    with session_scope() as session:
        job = service.create_job(session, kind, params, actor)
    if settings.broker_url:
        enqueue(job)
        return job
    return execute(job.id, on_progress=on_progress)


def enqueue(job: Job) -> None:
    from workers.app import app

    app.send_task(task_name(job.kind), args=[job.id], queue=QUEUES[job.kind])


def execute(job_id: str, *, on_progress: ProgressCallback | None = None) -> Job:
    """Run a job's handler; a redelivered job that already finished is left alone."""
    with session_scope() as session:
        job = service.get_job(session, job_id)
        if job.status == SUCCEEDED:
            return job
        service.mark_running(session, job)
        kind, params, actor = job.kind, dict(job.params), job.created_by
    ctx = JobContext(job_id=job_id, params=params, actor=actor, on_progress=on_progress)
    try:
        result = handler_for(kind)(ctx)
    except DataopsError as exc:
        _finish(job_id, error=str(exc))
        raise
    except Exception as exc:
        _finish(job_id, error=f"{type(exc).__name__}: {exc}")
        raise
    return _finish(job_id, result=result)


def _finish(job_id: str, *, result: dict[str, Any] | None = None, error: str | None = None) -> Job:
    with session_scope() as session:
        job = service.get_job(session, job_id)
        service.mark_finished(session, job, result=result, error=error)
        if error:
            log.warning("job %s (%s) failed: %s", job_id, job.kind, error)
        return job


def wait(
    job_id: str, *, timeout: float | None = None, on_progress: ProgressCallback | None = None
) -> Job:
    """Poll a queued job until it finishes (the CLI waits unless told not to)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with session_scope() as session:
            job = service.get_job(session, job_id)
        if on_progress is not None and job.progress_total:
            on_progress(job.progress_done, job.progress_total, job.status)
        if job.status in (SUCCEEDED, FAILED):
            return job
        if deadline is not None and time.monotonic() > deadline:
            return job
        time.sleep(0.5)
