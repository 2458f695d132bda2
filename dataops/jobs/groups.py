"""Jobs grouped by kind, sync jobs collapsed per queue: what a hundred syncs did, in one row.

A hundred annotations can start a hundred pulls of the same queue; listed one by one they
hide the ingest that failed. Each group says how many jobs it holds, how many run or failed,
what the newest one did and when the group last finished, and the numbers its finished jobs
reported, summed (``totals``: e.g. ``created`` tasks over every push of a queue).
Everything is aggregate SQL, so the cost does not grow with a loop over the job table.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Numeric, Text, and_, case, cast, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from dataops.database import dialect
from dataops.jobs.models import FAILED, RUNNING, SUCCEEDED, Job
from dataops.jobs.schemas import JobGroup, JobGroupRequest
from dataops.labeling.models import Queue
from dataops.selection.models import Batch

# The kinds whose jobs are collapsed per queue rather than per kind.
PER_QUEUE_KINDS = ("sync",)


def _queue_of_job() -> Any:
    """A sync job's queue: the one it names, else its batch's queue; other kinds have none."""
    named = Job.params["queue_id"].as_integer()
    via_batch = (
        select(Batch.queue_id)
        .where(Batch.id == Job.params["batch_id"].as_integer())
        .scalar_subquery()
    )
    return case((Job.kind.in_(PER_QUEUE_KINDS), func.coalesce(named, via_batch)), else_=None)


def _window(request: JobGroupRequest) -> list[Any]:
    where: list[Any] = []
    if request.since is not None:
        where.append(Job.created_at >= request.since)
    if request.kind is not None:
        where.append(Job.kind == request.kind)
    return where


def _ranked(request: JobGroupRequest) -> Any:
    queue = _queue_of_job().label("queue_id")
    newest_first = func.row_number().over(
        partition_by=(Job.kind, queue), order_by=(Job.created_at.desc(), Job.id.desc())
    )
    return (
        select(
            Job.id,
            Job.kind,
            Job.status,
            Job.error,
            Job.created_at,
            Job.finished_at,
            Job.progress_done,
            Job.progress_total,
            queue,
            newest_first.label("rank"),
        )
        .where(*_window(request))
        .subquery("ranked")
    )


def job_groups(session: Session, request: JobGroupRequest | None = None) -> list[JobGroup]:
    """One row per kind (per queue for sync jobs), the group with the newest job first."""
    request = request or JobGroupRequest()
    r = _ranked(request)
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
    totals = _totals(session, request, [(row.kind, row.queue_id) for row in rows])
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
            last_created_at=dialect.as_utc(row.last_created_at),
            last_finished_at=dialect.as_utc_or_none(row.last_finished_at),
            totals=totals.get((row.kind, row.queue_id), {}),
        )
        for row in rows
    ]


def _totals(
    session: Session, request: JobGroupRequest, keys: list[tuple[str, int | None]]
) -> dict[tuple[str, int | None], dict[str, int | float]]:
    """The numbers in the succeeded jobs' results, summed per group and key."""
    if not keys:
        return {}
    queue = _queue_of_job()
    number: Any
    if dialect.is_postgres(session):
        # A job without a result holds JSON null, which jsonb_each refuses.
        obj = case((func.jsonb_typeof(Job.result) == "object", Job.result), else_=cast("{}", JSONB))
        each = func.jsonb_each(obj).table_valued("key", "value").alias("each")
        is_number = func.jsonb_typeof(each.c.value) == "number"
        number = cast(cast(each.c.value, Text), Numeric)
    else:
        each = func.json_each(Job.result).table_valued("key", "value", "type").alias("each")
        is_number = each.c.type.in_(("integer", "real"))
        number = each.c.value
    wanted = or_(
        *(
            and_(Job.kind == kind, queue.is_(None) if qid is None else queue == qid)
            for kind, qid in keys
        )
    )
    rows = session.execute(
        select(Job.kind, queue.label("queue_id"), each.c.key, func.sum(number))
        .select_from(Job)
        .join(each, literal_column("true"))
        .where(
            Job.status == SUCCEEDED, Job.result.is_not(None), is_number, wanted, *_window(request)
        )
        .group_by(Job.kind, queue, each.c.key)
    ).all()
    out: dict[tuple[str, int | None], dict[str, int | float]] = {}
    for kind, qid, key, total in rows:
        value = float(total)
        out.setdefault((kind, qid), {})[str(key)] = int(value) if value.is_integer() else value
    return {k: dict(sorted(v.items())) for k, v in out.items()}
