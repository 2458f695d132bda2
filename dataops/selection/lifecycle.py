"""Where a batch stands: its status moves draft → sent → in_progress → delivered as the sync
pushes tasks and pulls annotations, and its counts say why.

Counting rules (shared by ``batches show`` and the status transitions):

- ``annotations``: live annotations, i.e. the newest label version of each annotator on each
  item, deletions left out; ``label_versions``: every stored version of the batch, including
  superseded edits and deletion records.
- an item is complete when that many *distinct annotators* hold a live label on it as its
  ``required_annotations`` asks (2 on overlap items); a skipped (cancelled) annotation is no
  label, so Label Studio hands the task to someone else and the item waits.
- ``in_progress`` starts with the first annotation or skip; ``delivered`` when every item is
  complete. Statuses only move forward: a later deletion shows in the counts, not the status.
- ``overdue``: the due date passed while the batch is still sent or in progress.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from dataops.database.dialect import as_utc_or_none
from dataops.db import utcnow
from dataops.errors import Conflict
from dataops.events import service as events
from dataops.labeling.models import DELETED, LabelVersion, Queue
from dataops.selection.errors import BatchNotFound, InvalidSelection, literal
from dataops.selection.models import OPEN_STATUSES, STATUSES, Batch, BatchItem

DRAFT, SENT, IN_PROGRESS, DELIVERED = "draft", "sent", "in_progress", "delivered"
# Label Studio may still change the annotations of these batches, so the sync keeps pulling.
SYNCED_STATUSES = (SENT, IN_PROGRESS, DELIVERED)
SKIPPED_ACTION = "label.skipped"
_AWAITING = (SENT, IN_PROGRESS)


def _iso(value: datetime | None) -> str | None:
    aware = as_utc_or_none(value)
    return aware.isoformat() if aware is not None else None


def get_batch(session: Session, ref: int | str, *, lock: bool = False) -> Batch:
    """A batch by id; ``lock`` serialises concurrent pushes of it on PostgreSQL."""
    text = str(ref).strip()
    batch = None
    if text.isdigit():
        stmt = select(Batch).where(Batch.id == int(text))
        batch = session.scalar(stmt.with_for_update() if lock else stmt)
    if batch is None:
        raise BatchNotFound(f"no batch {text!r}; see `dataops batches list`")
    return batch


def check_open(batch: Batch) -> None:
    """Closed batches (accepted, rejected, cancelled) never go back to Label Studio."""
    if batch.status not in OPEN_STATUSES:
        raise Conflict(f"batch {batch.id} is {batch.status}; only open batches are synced")


def _transition(
    session: Session, batch: Batch, to: str, *, actor: str | None, **details: Any
) -> None:
    previous = batch.status
    batch.status = to
    session.flush()
    events.record(
        session,
        "batch.status",
        "batch",
        batch.id,
        actor=actor,
        details={"from": previous, "to": to, **details},
    )


def mark_sent(session: Session, batch: Batch, *, project_id: int, actor: str | None = None) -> bool:
    """draft → sent once every item is a Label Studio task; the due date starts counting here."""
    if batch.status != DRAFT:
        return False
    now = utcnow()
    batch.sent_at = now
    batch.ls_project_id = project_id
    if batch.due_at is None and batch.queue_id is not None:
        queue = session.get(Queue, batch.queue_id)
        if queue is not None and queue.due_days is not None:
            batch.due_at = now + timedelta(days=queue.due_days)
    _transition(session, batch, SENT, actor=actor, ls_project_id=project_id)
    return True


def _live_ids(batch_ids: list[int]) -> Any:
    return (
        select(func.max(LabelVersion.id))
        .where(LabelVersion.batch_id.in_(batch_ids))
        .group_by(
            LabelVersion.image_id,
            LabelVersion.annotator_id,
            LabelVersion.task,
            LabelVersion.batch_id,
        )
    )


def _counts(session: Session, batch_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per batch: items, tasks, flags, complete items, live annotations and stored versions."""
    out = {
        batch_id: dict.fromkeys(
            (
                "items",
                "tasks",
                "overlap_items",
                "gold_items",
                "required_annotations",
                "items_complete",
                "annotations",
                "label_versions",
            ),
            0,
        )
        for batch_id in batch_ids
    }
    if not batch_ids:
        return out
    item_rows = session.execute(
        select(
            BatchItem.batch_id,
            func.count(),
            func.count(BatchItem.ls_task_id),
            func.sum(case((BatchItem.is_overlap, 1), else_=0)),
            func.sum(case((BatchItem.is_gold, 1), else_=0)),
            func.sum(BatchItem.required_annotations),
        )
        .where(BatchItem.batch_id.in_(batch_ids))
        .group_by(BatchItem.batch_id)
    )
    for batch_id, items, tasks, overlap, gold, required in item_rows:
        out[batch_id].update(
            items=items,
            tasks=tasks,
            overlap_items=int(overlap or 0),
            gold_items=int(gold or 0),
            required_annotations=int(required or 0),
        )
    live = LabelVersion.id.in_(_live_ids(batch_ids))
    for batch_id, count in session.execute(
        select(LabelVersion.batch_id, func.count())
        .where(live, LabelVersion.status != DELETED)
        .group_by(LabelVersion.batch_id)
    ):
        out[cast(int, batch_id)]["annotations"] = count
    for batch_id, count in session.execute(
        select(LabelVersion.batch_id, func.count())
        .where(LabelVersion.batch_id.in_(batch_ids))
        .group_by(LabelVersion.batch_id)
    ):
        out[cast(int, batch_id)]["label_versions"] = count
    per_image = (
        select(
            LabelVersion.batch_id,
            LabelVersion.image_id,
            func.count(func.distinct(LabelVersion.annotator_id)).label("annotators"),
        )
        .where(live, LabelVersion.status != DELETED)
        .group_by(LabelVersion.batch_id, LabelVersion.image_id)
        .subquery()
    )
    for batch_id, complete in session.execute(
        select(BatchItem.batch_id, func.count())
        .join(
            per_image,
            and_(
                per_image.c.batch_id == BatchItem.batch_id,
                per_image.c.image_id == BatchItem.image_id,
            ),
        )
        .where(per_image.c.annotators >= BatchItem.required_annotations)
        .group_by(BatchItem.batch_id)
    ):
        out[batch_id]["items_complete"] = complete
    return out


def skipped_annotations(session: Session, batch_id: int) -> set[str]:
    """Source ids of annotations skipped in Label Studio and never turned into a label."""
    from dataops.labelstudio.service import skipped_source_ids

    skipped = skipped_source_ids(session, batch_id)
    if not skipped:
        return set()
    labeled = set(
        session.scalars(
            select(LabelVersion.source_id).where(
                LabelVersion.batch_id == batch_id, LabelVersion.source_id.in_(sorted(skipped))
            )
        )
    )
    return skipped - labeled


def advance(session: Session, batch: Batch, *, actor: str | None = None) -> str:
    """Move a sent batch on as its annotations arrive; returns the (possibly new) status."""
    if batch.status not in _AWAITING:
        return batch.status
    counts = _counts(session, [batch.id])[batch.id]
    if batch.status == SENT and (counts["annotations"] or skipped_annotations(session, batch.id)):
        _transition(session, batch, IN_PROGRESS, actor=actor, annotations=counts["annotations"])
    if (
        batch.status == IN_PROGRESS
        and counts["items"]
        and counts["items_complete"] == counts["items"]
    ):
        batch.delivered_at = utcnow()
        _transition(
            session,
            batch,
            DELIVERED,
            actor=actor,
            items=counts["items"],
            annotations=counts["annotations"],
        )
    return batch.status


def is_overdue(batch: Batch, now: datetime | None = None) -> bool:
    due = as_utc_or_none(batch.due_at)
    return due is not None and batch.status in _AWAITING and (now or utcnow()) > due


def _summary(
    session: Session, batch: Batch, counts: dict[str, int], queue: str | None
) -> dict[str, Any]:
    return {
        "id": batch.id,
        "status": batch.status,
        "items": counts["items"],
        "tasks": counts["tasks"],
        "annotations": counts["annotations"],
        "label_versions": counts["label_versions"],
        "overlap_items": counts["overlap_items"],
        "gold_items": counts["gold_items"],
        "items_complete": counts["items_complete"],
        "required_annotations": counts["required_annotations"],
        "skipped": len(skipped_annotations(session, batch.id)),
        "queue": queue,
        "queue_id": batch.queue_id,
        "task": (batch.params or {}).get("task"),
        "purpose": batch.purpose,
        "strategy": batch.strategy,
        "ls_project_id": batch.ls_project_id,
        "created_at": _iso(batch.created_at),
        "sent_at": _iso(batch.sent_at),
        "delivered_at": _iso(batch.delivered_at),
        "due_at": _iso(batch.due_at),
        "overdue": is_overdue(batch),
    }


def batch_summary(session: Session, batch_id: int | str) -> dict[str, Any]:
    """The ``batches show`` contract: id, status, items, tasks, annotations, label_versions,
    overlap_items, gold_items, plus progress, dates and the overdue flag."""
    batch = get_batch(session, batch_id)
    queue = session.get(Queue, batch.queue_id) if batch.queue_id is not None else None
    counts = _counts(session, [batch.id])[batch.id]
    return _summary(session, batch, counts, queue.name if queue is not None else None)


def list_batches(
    session: Session, *, status: str | None = None, queue: str | int | None = None
) -> list[dict[str, Any]]:
    """Every batch (newest first) with the same counts as ``batch_summary``."""
    stmt = select(Batch).order_by(Batch.id.desc())
    if status is not None:
        if status not in STATUSES:
            raise InvalidSelection(
                f"{{status}} must be one of {', '.join(STATUSES)}, got {literal(repr(status))}",
                fields=("status",),
            )
        stmt = stmt.where(Batch.status == status)
    if queue is not None:
        from dataops.labeling.service import get_queue

        stmt = stmt.where(Batch.queue_id == get_queue(session, queue).id)
    batches = list(session.scalars(stmt))
    counts = _counts(session, [b.id for b in batches])
    names = {qid: name for qid, name in session.execute(select(Queue.id, Queue.name))}
    return [
        _summary(session, b, counts[b.id], names.get(b.queue_id) if b.queue_id else None)
        for b in batches
    ]
