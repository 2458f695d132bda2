"""Stale-job recovery: nothing queued may silently disappear (broker restart, lost worker).

A running job is stale once its lease has expired (its heartbeat stopped: the process that
ran it is gone); a pending job once it has waited `stale_after` seconds and no broker queue
holds its message. A job whose message still waits, or whose lease is alive, is left alone.
"""

from __future__ import annotations

from datetime import timedelta

from dataops.config import get_settings
from dataops.db import session_scope
from dataops.jobs import dispatch, service
from dataops.jobs.models import PENDING, Job


def recover_stale(older_than: int | None = None) -> list[str]:
    """Put stale jobs back to pending and send them again; returns their ids."""
    settings = get_settings()
    age = timedelta(seconds=older_than if older_than is not None else settings.worker.stale_after)
    with session_scope() as session:
        stale = service.stale_jobs(session, older_than=age)
    queued: set[str] | None = set()
    if settings.broker_url and any(job.status == PENDING for job in stale):
        queued = dispatch.queued_job_ids()
    recovered: list[Job] = []
    for job in stale:
        if job.status == PENDING and queued is not None and job.id in queued:
            continue  # its message is still on its way to a worker
        with session_scope() as session:  # conditional updates: one sweeper wins
            if job.attempts >= settings.worker.max_attempts:
                service.give_up(session, job, _gave_up(job.attempts))
            elif service.requeue(session, job):
                recovered.append(job)
    for job in recovered:
        dispatch.start(job)
    return [job.id for job in recovered]


def _gave_up(attempts: int) -> str:
    return (
        f"gave up after {attempts} attempts: each one stopped without an outcome (its worker "
        "died: out of memory, killed, or past the hard time limit); see the worker logs, fix "
        "the cause, and submit the job again"
    )
