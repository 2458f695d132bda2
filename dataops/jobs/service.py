from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dataops.db import utcnow
from dataops.events import service as events
from dataops.jobs.errors import JobNotFound
from dataops.jobs.models import FAILED, PENDING, RUNNING, SUCCEEDED, Job


def create_job(session: Session, kind: str, params: dict[str, Any], actor: str | None) -> Job:
    job = Job(kind=kind, params=params, created_by=actor)
    session.add(job)
    session.flush()
    events.record(session, "job.created", "job", job.id, actor=actor, details={"kind": kind})
    return job


def get_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise JobNotFound(f"no job {job_id!r} (see `dataops jobs list`)")
    return job


def list_jobs(
    session: Session, *, status: str | None = None, kind: str | None = None, limit: int = 50
) -> list[Job]:
    stmt = select(Job).order_by(Job.created_at.desc()).limit(limit)
    if status:
        stmt = stmt.where(Job.status == status)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    return list(session.scalars(stmt))


def mark_running(session: Session, job: Job) -> None:
    job.status = RUNNING
    job.attempts += 1
    job.started_at = job.heartbeat_at = utcnow()
    job.error = None
    session.flush()


def set_progress(session: Session, job_id: str, done: int, total: int) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(progress_done=done, progress_total=total, heartbeat_at=utcnow())
    )


def mark_finished(
    session: Session, job: Job, *, result: dict[str, Any] | None = None, error: str | None = None
) -> None:
    job.status = FAILED if error else SUCCEEDED
    job.result = result
    job.error = error
    job.finished_at = utcnow()
    session.flush()
    events.record(
        session,
        f"job.{job.status}",
        "job",
        job.id,
        actor=job.created_by,
        details={"kind": job.kind},
    )


def stale_jobs(
    session: Session, *, older_than: timedelta, now: datetime | None = None
) -> list[Job]:
    """Pending or running jobs nobody has touched for a while (lost broker message, dead worker)."""
    cutoff = (now or utcnow()) - older_than
    last_seen = func.coalesce(Job.heartbeat_at, Job.created_at)
    stmt = select(Job).where(Job.status.in_([PENDING, RUNNING]), last_seen < cutoff)
    return list(session.scalars(stmt))
