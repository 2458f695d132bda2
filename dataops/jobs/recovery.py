"""Stale-job recovery: nothing queued may silently disappear (broker restart, lost worker)."""

from __future__ import annotations

from datetime import timedelta

from dataops.config import get_settings
from dataops.db import session_scope, utcnow
from dataops.jobs import service
from dataops.jobs.models import PENDING


def recover_stale(older_than: int | None = None) -> list[str]:
    """Put stale jobs back to pending and enqueue them again; handlers are idempotent."""
    from dataops.jobs.runner import enqueue, execute

    settings = get_settings()
    age = timedelta(seconds=older_than if older_than is not None else settings.worker.stale_after)
    with session_scope() as session:
        stale = service.stale_jobs(session, older_than=age)
        for job in stale:
            job.status = PENDING
            job.heartbeat_at = utcnow()
        session.flush()
        jobs = list(stale)
    for job in jobs:
        if settings.broker_url:
            enqueue(job)
        else:
            execute(job.id)
    return [job.id for job in jobs]
