"""Jobs grouped by kind, sync jobs collapsed per queue: what a hundred syncs did, in one row.

A hundred annotations can start a hundred pulls of the same queue; listed one by one they
hide the ingest that failed. Each group says how many jobs it holds, how many run or failed,
what the newest one did and when the group last finished, and the numbers its finished jobs
reported, summed (``totals``: e.g. ``created`` tasks over every push of a queue).

Two aggregate queries over the same rows (the jobs of the period, each with its queue), so
the cost is one scan of the job table, never a Python loop over it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Numeric, Text, and_, case, cast, func, literal_column, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from dataops.database import dialect
from dataops.jobs.models import FAILED, RUNNING, SUCCEEDED, Job
from dataops.jobs.schemas import JobGroup, JobGroupRequest
from dataops.labeling.models import Queue
from dataops.selection.models import Batch

# The kinds whose jobs are collapsed per queue rather than per kind.
PER_QUEUE_KINDS = ("sync",)

Totals = dict[tuple[str, int | None], dict[str, int | float]]


def _jobs(request: JobGroupRequest) -> Any:
    """The period's jobs with their queue: a sync job's own, else its batch's; others none."""
    per_queue = Job.kind.in_(PER_QUEUE_KINDS)
    queue = case(
        (per_queue, func.coalesce(Job.params["queue_id"].as_integer(), Batch.queue_id)), else_=None
    )
    stmt = select(
        Job.id,
        Job.kind,
        Job.status,
        Job.error,
        Job.result,
        Job.created_at,
        Job.finished_at,
        queue.label("queue_id"),
    ).outerjoin(Batch, and_(per_queue, Batch.id == Job.params["batch_id"].as_integer()))
    if request.since is not None:
        stmt = stmt.where(Job.created_at >= request.since)
    if request.kind is not None:
        stmt = stmt.where(Job.kind == request.kind)
    return stmt.subquery("jobs_q")


def job_groups(session: Session, request: JobGroupRequest | None = None) -> list[JobGroup]:
    """One row per kind (per queue for sync jobs), the group with the newest job first."""
    request = request or JobGroupRequest()
    jobs = _jobs(request)
    newest_first = func.row_number().over(
        partition_by=(jobs.c.kind, jobs.c.queue_id),
        order_by=(jobs.c.created_at.desc(), jobs.c.id.desc()),
    )
    # Every column but the results, which only the totals read.
    kept = [c for c in jobs.c if c.name != "result"]
    r = select(*kept, newest_first.label("rank")).subquery("ranked")
    newest = r.c.rank == 1
    rows = session.execute(
        select(
            r.c.kind,
            r.c.queue_id,
            Queue.name,
            func.count().label("jobs"),
            func.sum(case((r.c.status == RUNNING, 1), else_=0)).label("running"),
            func.sum(case((r.c.status == FAILED, 1), else_=0)).label("failed"),
            func.max(case((newest, r.c.id), else_=None)).label("last_id"),
            func.max(case((newest, r.c.status), else_=None)).label("last_status"),
            func.max(case((newest, r.c.error), else_=None)).label("last_error"),
            func.max(r.c.created_at).label("last_created_at"),
            func.max(r.c.finished_at).label("last_finished_at"),
        )
        .outerjoin(Queue, Queue.id == r.c.queue_id)
        .group_by(r.c.kind, r.c.queue_id, Queue.name)
        .order_by(func.max(r.c.created_at).desc(), r.c.kind)
        .limit(request.limit)
    ).all()
    totals = _totals(session, jobs) if rows else {}
    return [
        JobGroup(
            kind=row.kind,
            queue_id=row.queue_id,
            queue=row.name,
            jobs=int(row.jobs),
            running=int(row.running or 0),
            failed=int(row.failed or 0),
            last_job_id=row.last_id,
            last_status=row.last_status,
            last_error=row.last_error,
            last_created_at=dialect.as_utc(_as_datetime(row.last_created_at)),
            last_finished_at=dialect.as_utc_or_none(_as_datetime(row.last_finished_at)),
            totals=totals.get((row.kind, row.queue_id), {}),
        )
        for row in rows
    ]


def _as_datetime(value: Any) -> Any:
    """``max()`` of a timestamp comes back as text on SQLite (an aggregate loses the type)."""
    from datetime import datetime

    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _totals(session: Session, jobs: Any) -> Totals:
    """The numbers in the succeeded jobs' results, summed per group and key."""
    number: Any
    if dialect.is_postgres(session):
        # A job without a result holds JSON null, which jsonb_each refuses.
        obj = case(
            (func.jsonb_typeof(jobs.c.result) == "object", jobs.c.result), else_=cast("{}", JSONB)
        )
        each = func.jsonb_each(obj).table_valued("key", "value").alias("each")
        is_number = func.jsonb_typeof(each.c.value) == "number"
        number = cast(cast(each.c.value, Text), Numeric)
    else:
        each = func.json_each(jobs.c.result).table_valued("key", "value", "type").alias("each")
        is_number = each.c.type.in_(("integer", "real"))
        number = each.c.value
    rows = session.execute(
        select(jobs.c.kind, jobs.c.queue_id, each.c.key, func.sum(number))
        .select_from(jobs)
        .join(each, literal_column("true"))
        .where(jobs.c.status == SUCCEEDED, jobs.c.result.is_not(None), is_number)
        .group_by(jobs.c.kind, jobs.c.queue_id, each.c.key)
    ).all()
    out: Totals = {}
    for kind, qid, key, total in rows:
        value = float(total)
        out.setdefault((kind, qid), {})[str(key)] = int(value) if value.is_integer() else value
    return {k: dict(sorted(v.items())) for k, v in out.items()}
