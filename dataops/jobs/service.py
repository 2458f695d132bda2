from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from dataops.db import utcnow
from dataops.events import service as events
from dataops.jobs.errors import JobNotFound, LeaseLost
from dataops.jobs.models import FAILED, PENDING, RUNNING, SUCCEEDED, Job
from dataops.jobs.schemas import JobListRequest


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


def list_jobs(session: Session, request: JobListRequest | None = None) -> list[Job]:
    request = request or JobListRequest()
    stmt = (
        select(Job)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(request.limit)
        .offset(request.offset)
    )
    if request.status:
        stmt = stmt.where(Job.status == request.status)
    if request.kind:
        stmt = stmt.where(Job.kind == request.kind)
    return list(session.scalars(stmt))


def claim(
    session: Session, job_id: str, owner: str, lease: timedelta, *, max_attempts: int
) -> bool:
    """Start an attempt: one conditional UPDATE, so of two deliveries at most one wins.

    A job can be claimed while pending, or while running under a lease that has expired;
    a finished job, or one whose lease is alive, is left to whoever holds it.
    """
    now = utcnow()
    claimed = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status.in_([PENDING, RUNNING]),
            or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < now),
            Job.attempts < max_attempts,
        )
        .values(
            status=RUNNING,
            attempts=Job.attempts + 1,
            started_at=now,
            heartbeat_at=now,
            error=None,
            lease_owner=owner,
            lease_expires_at=now + lease,
        )
        .execution_options(synchronize_session=False)
    )
    return _rowcount(claimed) == 1


def take_over(session: Session, job_id: str, dead_owner: str) -> bool:
    """Expire the lease of an attempt known to be dead, unless someone else got it first."""
    taken = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == RUNNING, Job.lease_owner == dead_owner)
        .values(lease_expires_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return _rowcount(taken) == 1


def renew_lease(session: Session, job_id: str, owner: str, lease: timedelta) -> bool:
    """The heartbeat: extend the lease while this attempt still holds it."""
    now = utcnow()
    renewed = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == RUNNING, Job.lease_owner == owner)
        .values(heartbeat_at=now, lease_expires_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(renewed) == 1


def lock_owned(session: Session, job_id: str, owner: str | None) -> Job:
    """Lock the job row for the caller's transaction; raise LeaseLost if another attempt
    holds it, so work done under an expired lease rolls back instead of doubling up."""
    job = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
    if job is None:
        raise JobNotFound(f"no job {job_id!r} (see `dataops jobs list`)")
    if owner is not None and job.lease_owner != owner:
        raise LeaseLost(f"job {job_id} is now run by another attempt ({job.lease_owner})")
    return job


def add_counters(session: Session, job_id: str, owner: str | None, counts: dict[str, int]) -> None:
    """Add to the job's counters in the transaction that did the counted work."""
    job = lock_owned(session, job_id, owner)
    totals = dict(job.counters or {})
    for key, value in counts.items():
        totals[key] = int(totals.get(key, 0)) + int(value)
    job.counters = totals
    session.flush()


def finish_with_work(
    session: Session, job_id: str, owner: str | None, result: dict[str, Any]
) -> None:
    """Mark the job succeeded in the transaction of its work, so both commit or neither does.

    One conditional UPDATE: it succeeds only while the job is unfinished and (given an owner)
    that attempt still holds the lease; otherwise LeaseLost rolls the work back. On
    PostgreSQL a second attempt's UPDATE waits for the first to commit and then matches
    nothing; SQLite lets one writer in at a time.
    """
    job_is_ours = [Job.id == job_id, Job.status.in_([PENDING, RUNNING])]
    if owner is not None:
        job_is_ours.append(Job.lease_owner == owner)
    finished = session.execute(
        update(Job)
        .where(*job_is_ours)
        .values(
            status=SUCCEEDED,
            result=result,
            error=None,
            finished_at=utcnow(),
            lease_owner=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    if _rowcount(finished) != 1:
        holder = session.scalar(select(Job.lease_owner).where(Job.id == job_id))
        raise LeaseLost(f"job {job_id} was finished or taken over by another attempt ({holder})")
    kind, actor = session.execute(select(Job.kind, Job.created_by).where(Job.id == job_id)).one()
    events.record(session, f"job.{SUCCEEDED}", "job", job_id, actor=actor, details={"kind": kind})


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def set_progress(session: Session, job_id: str, done: int, total: int) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(progress_done=done, progress_total=total, heartbeat_at=utcnow())
    )


def mark_finished(
    session: Session, job: Job, *, result: dict[str, Any] | None = None, error: str | None = None
) -> None:
    job.lease_owner = job.lease_expires_at = None
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
    """Jobs nobody is on: running under an expired lease (or, without a lease, silent for
    `older_than`), or pending for `older_than` (their message may be lost)."""
    now = now or utcnow()
    cutoff = now - older_than
    last_seen = func.coalesce(Job.heartbeat_at, Job.created_at)
    expired = and_(
        Job.status == RUNNING,
        or_(
            Job.lease_expires_at < now,
            and_(Job.lease_expires_at.is_(None), last_seen < cutoff),
        ),
    )
    forgotten = and_(Job.status == PENDING, last_seen < cutoff)
    return list(session.scalars(select(Job).where(or_(expired, forgotten))))


def requeue(session: Session, job: Job) -> bool:
    """Put a stale job back to pending unless it changed since it was found stale."""
    return _unless_changed(session, job, status=PENDING)


def give_up(session: Session, job: Job, error: str) -> bool:
    """Fail a stale job whose attempts keep dying, unless it changed since it was found stale."""
    if not _unless_changed(session, job, status=FAILED, error=error, finished_at=utcnow()):
        return False
    events.record(
        session,
        "job.failed",
        "job",
        job.id,
        actor=job.created_by,
        details={"kind": job.kind, "error": error},
    )
    return True


def _unless_changed(session: Session, job: Job, **values: Any) -> bool:
    same_lease = (
        Job.lease_owner.is_(None) if job.lease_owner is None else Job.lease_owner == job.lease_owner
    )
    now = utcnow()
    expired = or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < now)
    done = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == job.status, same_lease, expired)
        .values(lease_owner=None, lease_expires_at=None, heartbeat_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(done) == 1
