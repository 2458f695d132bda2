"""The one way work leaves the caller: `start(job)` runs a recorded job in this process
(embedded, no broker) or hands its id to a worker queue, and `send` puts any other task
message on a queue.

The broker side lives in `workers/` (the only code that imports Celery and kombu) and is
loaded by its import string, so importing dataops never imports the worker deployment.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from dataops.config import get_settings
from dataops.db import session_scope
from dataops.jobs import service
from dataops.jobs.context import ProgressCallback
from dataops.jobs.models import Job
from dataops.jobs.registry import QUEUES, task_name
from dataops.jobs.runner import execute

BROKER = "workers.broker"


def _broker() -> ModuleType:
    return importlib.import_module(BROKER)


def send(task_name: str, args: Sequence[Any], queue: str) -> None:
    """Put one task message on a worker queue (for messages that are not jobs)."""
    _broker().send(task_name, args, queue)


def start(job: Job, *, on_progress: ProgressCallback | None = None) -> Job:
    """Start a job whose row is committed: on a worker when a broker is set (returns the job
    as recorded), otherwise here and now (returns the finished job)."""
    if get_settings().broker_url:
        enqueue(job)
        return job
    return execute(job.id, on_progress=on_progress)


def submit(
    kind: str,
    params: dict[str, Any],
    *,
    actor: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> Job:
    """Record a job in a transaction of its own, then `start` it."""
    check_broker()
    with session_scope() as session:
        job = service.create_job(session, kind, params, actor)
    return start(job, on_progress=on_progress)


def enqueue(job: Job) -> None:
    """Hand a job's id to its worker queue."""
    send(task_name(job.kind), [job.id], QUEUES[job.kind])


def check_broker() -> None:
    """With a broker configured, raise BrokerUnavailable unless it answers (a job nobody
    will run is worse than an error now); without one, nothing to check."""
    url = get_settings().broker_url
    if url:
        _broker().check(url)


def queued_job_ids() -> set[str] | None:
    """Ids of jobs whose message waits in a broker queue; None when that cannot be known."""
    url = get_settings().broker_url
    if not url:
        return None
    result: set[str] | None = _broker().queued_job_ids(url)
    return result


def queue_lengths(timeout: float = 2.0) -> dict[str, int] | None:
    """Messages waiting per worker queue; None without a (Redis) broker or when it is away."""
    url = get_settings().broker_url
    if not url:
        return None
    result: dict[str, int] | None = _broker().queue_lengths(url, timeout=timeout)
    return result


def queue_consumers(timeout: float = 1.5) -> dict[str, list[str]]:
    """Queue name -> the running workers that consume it, asked over the broker."""
    url = get_settings().broker_url
    if not url:
        return {}
    result: dict[str, list[str]] = _broker().queue_consumers(url, timeout=timeout)
    return result


def is_broker_error(exc: BaseException) -> bool:
    """Whether an exception is the broker's own connection error (for callers that map
    errors to exit codes without importing kombu)."""
    return bool(_broker().is_broker_error(exc))
