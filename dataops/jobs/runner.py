"""Run one attempt of a job: the same `execute` runs in-process and inside a worker task.

The contract of a job handler (``HANDLERS`` in `dataops.jobs.registry`; one ``jobs.py`` per
domain): it takes a `JobContext` and returns the job's result (a JSON-able dict). The
handler owns its transactions, and only it does: each unit of work is one
``with ctx.session() as session:`` block, which commits when the block ends and rolls back
on an error. The services it calls take that session, flush, and never commit; multi-step
work that commits page by page takes ``transaction=ctx.session`` (a `dataops.db.Transaction`)
and opens one unit of work per page. A handler whose work must not be done twice records
its counters (`JobContext.count`) and its result (`JobContext.finish`) inside the
transaction of that work, so a worker dying after the commit leaves a finished job rather
than work a retry would redo. Handlers report progress with `JobContext.progress` (its own
short transaction) and stop where a race test needs them with `pause_point(name)`.

Jobs are started only through `dataops.jobs.dispatch` (`start`, `submit`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from dataops.config import get_settings
from dataops.db import session_scope
from dataops.errors import DataopsError
from dataops.jobs import service
from dataops.jobs.context import JobContext, ProgressCallback
from dataops.jobs.errors import LeaseLost
from dataops.jobs.models import FAILED, SUCCEEDED, Job
from dataops.jobs.registry import handler_for

__all__ = ["PAUSE_POINTS", "execute", "pause_point", "wait"]

log = logging.getLogger(__name__)

# Named points where tests hold an attempt still (to force a race) without sleeping.
PAUSE_POINTS: dict[str, Callable[[], None]] = {}


def pause_point(name: str) -> None:
    hook = PAUSE_POINTS.get(name)
    if hook is not None:
        hook()


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
            # The kind of failure and the message's fields travel with the job, so a CLI
            # waiting on a worker can exit as if the error had happened in its own process (3
            # for a service that is down) and name the fields as its flags; `error` keeps the
            # API's spelling.
            failure = {"error": exc.as_record()}
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
