"""Cancel a batch: a draft, or one already sent to Label Studio.

A cancelled batch holds nothing: its images are released for later selections, and the
tasks nobody labeled are removed from its queue's Label Studio project, so no one works on
them. Labels already made are kept: stored label versions stay, and tasks with an annotation
stay in Label Studio, where the next pull of the queue stores any that were not pulled yet
(cancelled batches' tasks are still matched to their items).

Order matters. Label Studio is asked first (tasks without annotations are deleted in one
server-side filtered action, so a task labeled meanwhile is kept), then the batch is closed in
one transaction. If Label Studio cannot be reached nothing changes here and the command can be
run again; running it again on a cancelled batch removes whatever is left.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from dataops.db import Transaction, utcnow
from dataops.events import service as events
from dataops.labeling.models import LabelVersion, Queue
from dataops.selection import lifecycle
from dataops.selection.errors import BatchNotCancellable
from dataops.selection.models import Batch, BatchItem, ImageClaim
from dataops.selection.schemas import BatchChange
from dataops.selection.tasks import batch_task

CANCELLED = "cancelled"
CLOSED = ("accepted", "rejected")


def check_cancellable(session: Session, batch_id: int) -> Batch:
    batch = lifecycle.get_batch(session, batch_id)
    if batch.status in CLOSED:
        raise BatchNotCancellable(
            f"batch {batch.id} is {batch.status}: it is closed and holds no images; nothing to "
            "cancel"
        )
    return batch


def _pushed_tasks(session: Session, batch_id: int) -> list[int]:
    return [
        task_id
        for task_id in session.scalars(
            select(BatchItem.ls_task_id).where(
                BatchItem.batch_id == batch_id, BatchItem.ls_task_id.is_not(None)
            )
        )
        if task_id is not None
    ]


def _remove_unlabelled(
    connection: str, project_id: int, task_ids: list[int]
) -> tuple[list[int], list[int]]:
    from dataops.labelstudio.service import client_for

    with client_for(connection) as client:
        return client.delete_unlabelled_tasks(project_id, task_ids)


def cancel_batch(
    batch_id: int,
    *,
    transaction: Transaction,
    actor: str | None = None,
    reason: str | None = None,
) -> BatchChange:
    """Cancel a draft or a sent batch (see the module docstring); repeatable."""
    with transaction() as session:
        batch = check_cancellable(session, batch_id)
        task_ids = _pushed_tasks(session, batch.id)
        queue = session.get(Queue, batch.queue_id) if batch.queue_id is not None else None
        connection = queue.connection if queue is not None else None
        project_id = batch.ls_project_id or (queue.ls_project_id if queue is not None else None)
    removed: list[int] = []
    kept: list[int] = []
    if task_ids and connection is not None and project_id is not None:
        removed, kept = _remove_unlabelled(connection, project_id, task_ids)
    with transaction() as session:
        change = _close(session, batch_id, removed, kept, actor=actor, reason=reason)
    if connection is None or project_id is None:
        return change
    # A push that was running may have added tasks before the batch closed: remove those too.
    with transaction() as session:
        stray = sorted(set(_pushed_tasks(session, batch_id)) - set(kept))
    if not stray:
        return change
    more, also_kept = _remove_unlabelled(connection, project_id, stray)
    with transaction() as session:
        again = _close(session, batch_id, more, also_kept, actor=actor, reason=reason)
    return again.model_copy(
        update={
            "released": change.released + again.released,
            "removed_tasks": change.removed_tasks + again.removed_tasks,
            "kept_tasks": len(set(kept) | set(also_kept)),
        }
    )


def _close(
    session: Session,
    batch_id: int,
    removed: list[int],
    kept: list[int],
    *,
    actor: str | None,
    reason: str | None,
) -> BatchChange:
    batch = lifecycle.get_batch(session, batch_id, lock=True)
    if batch.status in CLOSED:  # accepted or rejected meanwhile: its own rules apply
        check_cancellable(session, batch.id)
    if removed:
        session.execute(
            update(BatchItem)
            .where(BatchItem.batch_id == batch.id, BatchItem.ls_task_id.in_(removed))
            .values(ls_task_id=None, pushed_at=None)
        )
    released = session.execute(delete(ImageClaim).where(ImageClaim.batch_id == batch.id))
    released_count = int(getattr(released, "rowcount", 0) or 0)
    already = batch.status == CANCELLED
    if not already:
        previous = batch.status
        batch.status = CANCELLED
        batch.closed_at = utcnow()
        session.flush()
        events.record(
            session,
            "batch.status",
            "batch",
            batch.id,
            actor=actor,
            details={"from": previous, "to": CANCELLED, "reason": reason},
        )
    labels = session.scalar(
        select(func.count()).select_from(LabelVersion).where(LabelVersion.batch_id == batch.id)
    )
    details: dict[str, Any] = {
        "reason": reason,
        "released": released_count,
        "removed_tasks": len(removed),
        "kept_tasks": len(kept),
        "label_versions_kept": int(labels or 0),
    }
    if not already or released_count or removed:
        events.record(session, "batch.cancelled", "batch", batch.id, actor=actor, details=details)
    queue = session.get(Queue, batch.queue_id) if batch.queue_id is not None else None
    return BatchChange(
        id=batch.id,
        status=batch.status,
        queue=queue.name if queue is not None else None,
        task=batch_task(session, batch),
        size=batch.size,
        released=released_count,
        removed_tasks=len(removed),
        kept_tasks=len(kept),
        label_versions_kept=int(labels or 0),
    )
