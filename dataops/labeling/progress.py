"""Queue and batch progress: items sent, answered, accepted and rejected, answers per day.

Counting rules (one aggregate query per view, never a loop over rows):

- an item is *sent* once it is a Label Studio task; *answered* once it holds a live answer
  (an annotator's newest label version in the batch, deletions left out); *accepted* when one
  of its live answers was accepted or adjudicated by an audit; *rejected* when an audit
  rejected its live answers and accepted none.
- *throughput* counts new answers (the first version of each annotator's label on an item)
  per UTC day, dated by Label Studio's last edit of the answer (else when dataops stored it).
- a queue's *due date* is the earliest due date of its sent or in-progress batches, and it
  is *overdue* when that date has passed.

Vendors get the same numbers without overlap and gold counts (``vendor_view``): those would
tell them how many honeypots to look for.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, func, or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, aliased

from dataops.database.dialect import as_utc_or_none, insert, no_lock_wait
from dataops.db import utcnow
from dataops.labeling.guideline_versions import guideline_ref
from dataops.labeling.models import (
    ACCEPTED,
    ADJUDICATED,
    DELETED,
    REJECTED,
    Guideline,
    LabelVersion,
    Queue,
    Vendor,
)
from dataops.labeling.progress_models import ANSWERED_AT, BatchCounts
from dataops.labeling.progress_schemas import (
    BATCH_PAGE,
    DEFAULT_PERIOD_DAYS,
    MAX_PERIOD_DAYS,
    BatchList,
    BatchRow,
    DayCount,
    QueueProgress,
)
from dataops.labeling.queues import get_queue
from dataops.selection.errors import BatchNotFound, InvalidSelection
from dataops.selection.models import OPEN_STATUSES, STATUSES, Batch, BatchItem

AWAITING = ("sent", "in_progress")
DRAFT = "draft"
_CHUNK = 200
# How long stored counts of an open batch are trusted (see _store_missing).
STALE_AFTER = timedelta(minutes=30)
_COUNT_FIELDS = (
    "items",
    "sent",
    "answered",
    "accepted",
    "rejected",
    "answers",
    "overlap_items",
    "gold_items",
)


def _live_answers(batches: Any) -> Any:
    """Per (batch, image): live answers and whether an audit accepted or rejected them.

    A live version is one no other version supersedes: every new version of an annotator's
    label (an edit, a deletion record) supersedes the live end of its chain
    (``dataops.labeling.labels``), so this is each chain's newest row, found through the
    supersedes_id index instead of grouping every version of the batches.
    """
    newer = aliased(LabelVersion)
    superseded = select(newer.id).where(newer.supersedes_id == LabelVersion.id).exists()
    accepted = case((LabelVersion.status.in_((ACCEPTED, ADJUDICATED)), 1), else_=0)
    rejected = case((LabelVersion.status == REJECTED, 1), else_=0)
    return (
        select(
            LabelVersion.batch_id,
            LabelVersion.image_id,
            func.count().label("answers"),
            func.max(accepted).label("accepted"),
            func.max(rejected).label("rejected"),
        )
        .where(LabelVersion.batch_id.in_(batches), ~superseded, LabelVersion.status != DELETED)
        .group_by(LabelVersion.batch_id, LabelVersion.image_id)
        .subquery("live_answers")
    )


def _count_live(session: Session, batch_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """The Counts fields of these batches, counted from their items and label versions."""
    live = _live_answers(list(batch_ids))
    sent = BatchItem.ls_task_id.is_not(None)

    def total(condition: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    rows = session.execute(
        select(
            BatchItem.batch_id,
            func.count(BatchItem.id),
            total(sent),
            total(live.c.answers > 0),
            total(live.c.accepted == 1),
            total(and_(live.c.rejected == 1, live.c.accepted == 0)),
            func.coalesce(func.sum(live.c.answers), 0),
            total(and_(sent, BatchItem.is_overlap)),
            total(and_(sent, BatchItem.is_gold)),
        )
        .outerjoin(
            live,
            and_(live.c.batch_id == BatchItem.batch_id, live.c.image_id == BatchItem.image_id),
        )
        .where(BatchItem.batch_id.in_(list(batch_ids)))
        .group_by(BatchItem.batch_id)
    )
    found = {int(row[0]): dict(zip(_COUNT_FIELDS, map(int, row[1:]), strict=True)) for row in rows}
    return {batch_id: found.get(batch_id, _zero()) for batch_id in batch_ids}


def _recount(session: Session, where: ColumnElement[bool]) -> dict[int, dict[str, int]]:
    """Count the batches ``where`` picks whose stored counts are missing or not trusted; store
    the new counts when that needs no wait, and return them by batch.

    Triggers (migration 0015) drop a batch's row whenever one of its items or labels is
    written, so a row is normally what a fresh count would give. A write that commits while
    a reader is counting can still leave that reader's row one step behind, so rows are
    trusted only while that cannot matter: an open batch's for ``STALE_AFTER``, a closed
    batch's when counted after it closed. Storing is skipped, never waited for, while
    another transaction (an audit, a push) holds the batch: pages stay fast meanwhile.
    """
    now = utcnow()
    closed_after = and_(
        Batch.status.not_in(OPEN_STATUSES),
        or_(Batch.closed_at.is_(None), BatchCounts.computed_at >= Batch.closed_at),
    )
    trusted = select(BatchCounts.batch_id).where(
        BatchCounts.batch_id == Batch.id,
        or_(BatchCounts.computed_at >= now - STALE_AFTER, closed_after),
    )
    missing = list(session.scalars(select(Batch.id).where(where, ~trusted.exists())))
    fresh: dict[int, dict[str, int]] = {}
    for start in range(0, len(missing), _CHUNK):
        chunk = missing[start : start + _CHUNK]
        counted_at = utcnow()  # before counting: a later write makes the row look older
        counts = _count_live(session, chunk)
        fresh.update(counts)
        rows = [{"batch_id": b, "computed_at": counted_at, **counts[b]} for b in chunk]
        try:
            with no_lock_wait(session), session.begin_nested():
                session.execute(delete(BatchCounts).where(BatchCounts.batch_id.in_(chunk)))
                session.execute(insert(session, BatchCounts).values(rows).on_conflict_do_nothing())
        except OperationalError:
            continue  # locked by a writer: counted for this read, stored by a later one
    return fresh


def _counts(session: Session, key: Any, where: ColumnElement[bool]) -> dict[int, dict[str, int]]:
    """The Counts fields per value of ``key`` (a Batch column) over the batches ``where`` picks:
    stored rows summed in SQL, plus the batches just counted again."""
    fresh = _recount(session, where)
    columns = [func.coalesce(func.sum(getattr(BatchCounts, f)), 0) for f in _COUNT_FIELDS]
    stored = (
        select(key, *columns)
        .select_from(BatchCounts)
        .join(Batch, Batch.id == BatchCounts.batch_id)
        .where(where)
        .group_by(key)
    )
    if fresh:
        stored = stored.where(BatchCounts.batch_id.not_in(list(fresh)))
    out = {
        int(row[0]): dict(zip(_COUNT_FIELDS, map(int, row[1:]), strict=True))
        for row in session.execute(stored)
    }
    if fresh:
        keys = session.execute(select(Batch.id, key).where(Batch.id.in_(list(fresh))))
        for batch_id, value in keys:
            if value is None:
                continue
            total = out.setdefault(int(value), _zero())
            for field, n in fresh[int(batch_id)].items():
                total[field] += n
    return out


def _zero() -> dict[str, int]:
    return dict.fromkeys(_COUNT_FIELDS, 0)


def _shown(counts: dict[str, int], vendor_view: bool) -> dict[str, int | None]:
    out: dict[str, int | None] = dict(counts)
    if vendor_view:
        out.update(overlap_items=None, gold_items=None)
    return out


def check_period(days: int) -> int:
    if not 1 <= days <= MAX_PERIOD_DAYS:
        raise InvalidSelection(
            f"{{days}} must be between 1 and {MAX_PERIOD_DAYS}, got {days}", fields=("days",)
        )
    return days


def _throughput(
    session: Session, queue_ids: Sequence[int], days: int, now: datetime
) -> dict[int, list[DayCount]]:
    """New answers per UTC day for each queue, oldest day first, in one pass over the
    period's answers (one conditional sum per day, so both dialects bucket alike)."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    starts = [
        datetime(first.year, first.month, first.day, tzinfo=UTC) + timedelta(days=i)
        for i in range(days + 1)
    ]
    when = ANSWERED_AT
    per_day = [
        func.coalesce(func.sum(case((and_(when >= lo, when < hi), 1), else_=0)), 0)
        for lo, hi in itertools.pairwise(starts)
    ]
    rows = session.execute(
        select(Batch.queue_id, *per_day)
        .select_from(LabelVersion)
        .join(Batch, Batch.id == LabelVersion.batch_id)
        .where(
            Batch.queue_id.in_(list(queue_ids)),
            # A first version is an answer, never a deletion record (those supersede one).
            LabelVersion.supersedes_id.is_(None),
            when >= starts[0],
        )
        .group_by(Batch.queue_id)
    )
    found = {int(row[0]): [int(n) for n in row[1:]] for row in rows}
    return {
        queue_id: [
            DayCount(day=first + timedelta(days=i), answers=n)
            for i, n in enumerate(found.get(queue_id, [0] * days))
        ]
        for queue_id in queue_ids
    }


def queue_progress(
    session: Session,
    queues: Sequence[Queue],
    *,
    vendor_view: bool,
    days: int = DEFAULT_PERIOD_DAYS,
    now: datetime | None = None,
) -> list[QueueProgress]:
    """Progress of the given queues, in their order."""
    days = check_period(days)
    moment = now or utcnow()
    ids = [q.id for q in queues]
    if not ids:
        return []
    mine: ColumnElement[bool] = Batch.queue_id.in_(ids)
    if vendor_view:
        # A vendor's totals leave out batches it was never sent (see _batch_filter).
        mine = and_(mine, Batch.sent_at.is_not(None))
    counts = _counts(session, Batch.queue_id, mine)
    awaiting = Batch.status.in_(AWAITING)
    batch_rows = session.execute(
        select(
            Batch.queue_id,
            func.count(),
            func.coalesce(func.sum(case((Batch.status.in_(OPEN_STATUSES), 1), else_=0)), 0),
            func.min(case((awaiting, Batch.due_at), else_=None)),
        )
        .where(mine)
        .group_by(Batch.queue_id)
    )
    batches = {int(r[0]): (int(r[1]), int(r[2]), r[3]) for r in batch_rows}
    vendors = {
        int(vid): str(name)
        for vid, name in session.execute(
            select(Vendor.id, Vendor.name).where(Vendor.id.in_({q.vendor_id for q in queues}))
        )
    }
    guidelines = {
        g.id: guideline_ref(g)
        for g in session.scalars(
            select(Guideline).where(Guideline.id.in_({q.guideline_id for q in queues}))
        )
    }
    throughput = _throughput(session, ids, days, moment)
    out = []
    for queue in queues:
        total, open_count, due = batches.get(queue.id, (0, 0, None))
        next_due = _as_datetime(due)
        out.append(
            QueueProgress(
                queue_id=queue.id,
                queue=queue.name,
                vendor=vendors[queue.vendor_id],
                vendor_id=queue.vendor_id,
                guideline=guidelines[queue.guideline_id],
                due_days=queue.due_days,
                next_due_at=next_due,
                overdue=next_due is not None and next_due < moment,
                batches=total,
                open_batches=open_count,
                period_days=days,
                throughput=throughput[queue.id],
                period_answers=sum(day.answers for day in throughput[queue.id]),
                **_shown(counts.get(queue.id, _zero()), vendor_view),
            )
        )
    return out


def _as_datetime(value: Any) -> datetime | None:
    """``min(due_at)`` comes back as text on SQLite (an aggregate loses the column type)."""
    if value is None or isinstance(value, datetime):
        return as_utc_or_none(value)
    return as_utc_or_none(datetime.fromisoformat(str(value)))


def visible_queue_rows(
    session: Session, *, scope_vendor: int | None, ref: str | int | None = None
) -> list[Queue]:
    """Queues by name, or the one ``ref`` names; a vendor's reader gets only its own and
    another vendor's queue is reported like a missing one."""
    if ref is not None:
        return [get_queue(session, ref, vendor_id=scope_vendor)]
    stmt = select(Queue).order_by(Queue.name)
    if scope_vendor is not None:
        stmt = stmt.where(Queue.vendor_id == scope_vendor)
    return list(session.scalars(stmt))


def progress_of_queue(
    session: Session, ref: str | int, *, scope_vendor: int | None, days: int = DEFAULT_PERIOD_DAYS
) -> QueueProgress:
    queues = visible_queue_rows(session, scope_vendor=scope_vendor, ref=ref)
    return queue_progress(session, queues, vendor_view=scope_vendor is not None, days=days)[0]


def _batch_filter(
    session: Session, *, scope_vendor: int | None, queue: str | int | None, status: str | None
) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    if status is not None:
        if status not in STATUSES:
            raise InvalidSelection(
                f"{{status}} must be one of {', '.join(STATUSES)}", fields=("status",)
            )
        conditions.append(Batch.status == status)
    if queue is not None:
        conditions.append(Batch.queue_id == get_queue(session, queue, vendor_id=scope_vendor).id)
    if scope_vendor is not None:
        # A vendor never hears of a batch that was never sent (a draft, or a draft cancelled
        # before it was sent): it is not its work (yet), and may never be.
        own = select(Queue.id).where(Queue.vendor_id == scope_vendor)
        conditions += [Batch.queue_id.in_(own), Batch.sent_at.is_not(None)]
    return and_(True, *conditions)


def list_batches(
    session: Session,
    *,
    scope_vendor: int | None,
    queue: str | int | None = None,
    status: str | None = None,
    limit: int = BATCH_PAGE,
    offset: int = 0,
    now: datetime | None = None,
) -> BatchList:
    """Batches newest first with their counts, one page at a time."""
    where = _batch_filter(session, scope_vendor=scope_vendor, queue=queue, status=status)
    total = session.scalar(select(func.count()).select_from(Batch).where(where)) or 0
    page = list(
        session.scalars(
            select(Batch).where(where).order_by(Batch.id.desc()).limit(limit).offset(offset)
        )
    )
    rows = batch_rows(session, page, vendor_view=scope_vendor is not None, now=now)
    return BatchList(batches=rows, total=total, limit=limit, offset=offset)


def batch_rows(
    session: Session, batches: Sequence[Batch], *, vendor_view: bool, now: datetime | None = None
) -> list[BatchRow]:
    if not batches:
        return []
    moment = now or utcnow()
    ids = [b.id for b in batches]
    counts = _counts(session, Batch.id, Batch.id.in_(ids))
    names = {
        int(qid): str(name)
        for qid, name in session.execute(
            select(Queue.id, Queue.name).where(Queue.id.in_({b.queue_id for b in batches}))
        )
    }
    out = []
    for batch in batches:
        due = as_utc_or_none(batch.due_at)
        out.append(
            BatchRow(
                id=batch.id,
                queue_id=batch.queue_id,
                queue=names.get(batch.queue_id) if batch.queue_id is not None else None,
                status=batch.status,
                purpose=batch.purpose,
                strategy=None if vendor_view else batch.strategy,
                created_at=batch.created_at,
                sent_at=batch.sent_at,
                due_at=due,
                overdue=due is not None and batch.status in AWAITING and moment > due,
                **_shown(counts.get(batch.id, _zero()), vendor_view),
            )
        )
    return out


def visible_batch(session: Session, batch_id: int, *, scope_vendor: int | None) -> Batch:
    """A batch its reader may see: a vendor's own queues' batches once sent (whatever became
    of them since; a draft cancelled unsent never was); any other is reported like a missing
    one."""
    batch = session.get(Batch, batch_id)
    if batch is not None and scope_vendor is not None:
        owner = (
            session.scalar(select(Queue.vendor_id).where(Queue.id == batch.queue_id))
            if batch.queue_id is not None
            else None
        )
        if owner != scope_vendor or batch.sent_at is None:
            batch = None
    if batch is None:
        raise BatchNotFound(f"no batch {batch_id}; see `dataops batches list`")
    return batch
