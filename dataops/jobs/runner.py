"""Submit and execute jobs; the same `execute` runs in-process and inside a Celery task."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from dataops.config import get_settings
from dataops.db import session_scope
from dataops.errors import DataopsError
from dataops.jobs import service
from dataops.jobs.errors import BrokerUnavailable, LeaseLost
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
    owner: str | None = None
    finished: bool = False
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

    def count(self, session: Session, counts: dict[str, int]) -> None:
        """Add to the job's counters in the transaction of the work counted, so totals add up
        across attempts; raises LeaseLost (rolling that work back) if another attempt took over."""
        service.add_counters(session, self.job_id, self.owner, counts)

    def finish(self, session: Session, result: dict[str, Any]) -> dict[str, Any]:
        """Record the job's result in the transaction of its work (call it last, just before
        that transaction commits): a worker dying after the commit leaves a finished job, so a
        retry or a racing attempt answers with this result instead of redoing the work. Raises
        LeaseLost, rolling the work back, if another attempt took over or finished first."""
        service.finish_with_work(session, self.job_id, self.owner, result)
        self.finished = True
        return result

    def counters(self) -> dict[str, int]:
        with session_scope() as session:
            return dict(service.get_job(session, self.job_id).counters or {})


# Named points where tests hold an attempt still (to force a race) without sleeping.
PAUSE_POINTS: dict[str, Callable[[], None]] = {}


def pause_point(name: str) -> None:
    hook = PAUSE_POINTS.get(name)
    if hook is not None:
        hook()


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


def queued_job_ids() -> set[str] | None:
    """Ids of jobs whose message waits in a broker queue; None when that cannot be known."""
    broker_url = get_settings().broker_url
    if not broker_url:
        return None
    from workers.queues import queued_job_ids as read_queues

    return read_queues(broker_url)


def execute(job_id: str, *, on_progress: ProgressCallback | None = None) -> Job:
    """Run one attempt of a job, unless it has finished or a live attempt holds its lease.

    The attempt holds a lease on the job row, renewed by a heartbeat thread whatever the
    handler's progress; its outcome is written only while it still holds that lease.
    """
    settings = get_settings().worker
    lease = timedelta(seconds=settings.lease)
    owner = _new_owner()
    if not _claim(job_id, owner, lease, settings.max_attempts):
        with session_scope() as session:
            job = service.get_job(session, job_id)
        log.info(
            "job %s is %s (lease %s): this delivery is dropped", job_id, job.status, job.lease_owner
        )
        return job
    with session_scope() as session:
        job = service.get_job(session, job_id)
        kind, params, actor = job.kind, dict(job.params), job.created_by
    ctx = JobContext(
        job_id=job_id, params=params, actor=actor, on_progress=on_progress, owner=owner
    )
    with Heartbeat(job_id, owner, lease):
        try:
            result = handler_for(kind)(ctx)
        except LeaseLost as exc:
            log.warning("job %s: %s; this attempt stops", job_id, exc)
            return _current(job_id)
        except DataopsError as exc:
            # The kind of failure travels with the job, so a CLI waiting on a worker can exit
            # as if the error had happened in its own process (3 for a service that is down).
            failure = {"error": {"code": exc.code, "status": exc.status_code}}
            if not _finish(job_id, owner, error=str(exc), result=failure):
                return _current(job_id)
            raise
        except Exception as exc:
            if not _finish(job_id, owner, error=f"{type(exc).__name__}: {exc}"):
                return _current(job_id)
            raise
        if ctx.finished:  # the handler wrote its outcome with its work
            return _current(job_id)
        _finish(job_id, owner, result=result)
        return _current(job_id)


def _new_owner() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def _claim(job_id: str, owner: str, lease: timedelta, max_attempts: int) -> bool:
    with session_scope() as session:
        if service.claim(session, job_id, owner, lease, max_attempts=max_attempts):
            return True
        holder = service.get_job(session, job_id).lease_owner
    # A pool process killed on this machine cannot renew its lease: take over at once
    # rather than wait for the lease to run out.
    if holder is None or not _died_here(holder):
        return False
    with session_scope() as session:
        if not service.take_over(session, job_id, holder):
            return False
    log.warning("job %s: its attempt %s died; taking over", job_id, holder)
    with session_scope() as session:
        return service.claim(session, job_id, owner, lease, max_attempts=max_attempts)


def _died_here(owner: str) -> bool:
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed process nobody has reaped yet still answers signal 0
        with open(f"/proc/{pid_text}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


class Heartbeat:
    """Renews a job's lease every third of its length from a thread of its own, so a step
    that reports no progress for longer than the lease still shows a live attempt."""

    def __init__(self, job_id: str, owner: str, lease: timedelta) -> None:
        self.job_id, self.owner, self.lease = job_id, owner, lease
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def _run(self) -> None:
        interval = self.lease.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                with session_scope() as session:
                    held = service.renew_lease(session, self.job_id, self.owner, self.lease)
            except Exception as exc:  # the database may be briefly away; the lease has slack
                log.warning("job %s: could not renew its lease: %s", self.job_id, exc)
                continue
            if not held:
                self.lost.set()
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _current(job_id: str) -> Job:
    with session_scope() as session:
        return service.get_job(session, job_id)


def _finish(
    job_id: str, owner: str, *, result: dict[str, Any] | None = None, error: str | None = None
) -> bool:
    """Record this attempt's outcome; False if the job is no longer this attempt's (another
    attempt took it over or finished it), so what this one saw is not the job's outcome."""
    with session_scope() as session:
        try:
            job = service.lock_owned(session, job_id, owner)
        except LeaseLost as exc:
            log.warning("job %s: %s; this attempt's outcome is not recorded", job_id, exc)
            return False
        service.mark_finished(session, job, result=result, error=error)
        if error:
            log.warning("job %s (%s) failed: %s", job_id, job.kind, error)
        return True


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
