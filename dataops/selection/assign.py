"""Give a draft batch a vendor queue (or another one), so it can be pushed.

A batch selected without ``--queue`` is a draft nobody can push; assigning it is how it moves
on. The queue decides the batch's task (its guideline's name), overlap and gold shares, as if
the batch had been selected for it. Images already labeled for that task, or in a duplicate
group that is, are taken out of the batch and released: no vendor is paid twice for an image.
Only drafts whose push has not started can be assigned; a sent batch's tasks live in its
queue's Label Studio project.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from dataops.catalog.models import Image
from dataops.events import service as events
from dataops.labeling.models import Queue
from dataops.selection import lifecycle
from dataops.selection.errors import BatchNotAssignable
from dataops.selection.models import BatchItem, ImageClaim
from dataops.selection.pool import labeled_for_task
from dataops.selection.schemas import BatchChange
from dataops.selection.tasks import batch_task, queue_task


def assign_batch(
    session: Session, batch_id: int, queue_ref: str | int, *, actor: str | None = None
) -> BatchChange:
    """Point a draft at ``queue_ref``; repeating it with the same queue changes nothing."""
    from dataops.labeling.service import get_queue

    batch = lifecycle.get_batch(session, batch_id, lock=True)
    queue = get_queue(session, queue_ref)
    if batch.status != lifecycle.DRAFT:
        raise BatchNotAssignable(
            f"batch {batch.id} is {batch.status}; only drafts get a queue (its tasks are in "
            "its queue's Label Studio project). Cancel it (`dataops batches cancel "
            f"{batch.id}`) and select again for the other queue"
        )
    pushed = session.scalar(
        select(BatchItem.id)
        .where(BatchItem.batch_id == batch.id, BatchItem.ls_task_id.is_not(None))
        .limit(1)
    )
    if batch.queue_id != queue.id and (pushed is not None or batch.ls_project_id is not None):
        raise BatchNotAssignable(
            f"batch {batch.id} was partly pushed to its queue's Label Studio project; finish "
            f"the push (`dataops batches push {batch.id}`) or cancel it"
        )
    task = queue_task(session, queue)
    if batch.queue_id == queue.id and batch_task(session, batch) == task:
        return _change(session, batch.id, queue, task, [])
    labeled = labeled_for_task(task)
    dropped = sorted(
        session.scalars(
            select(BatchItem.image_id)
            .join(Image, Image.id == BatchItem.image_id)
            .where(BatchItem.batch_id == batch.id, labeled)
        )
    )
    items = session.scalar(select(func.count()).where(BatchItem.batch_id == batch.id)) or 0
    if dropped and len(dropped) >= items:
        raise BatchNotAssignable(
            f"every image of batch {batch.id} is already labeled for task {task!r} (queue "
            f"{queue.name!r}); cancel it (`dataops batches cancel {batch.id}`)"
        )
    if dropped:
        session.execute(
            delete(BatchItem).where(BatchItem.batch_id == batch.id, BatchItem.image_id.in_(dropped))
        )
        session.execute(
            delete(ImageClaim).where(
                ImageClaim.batch_id == batch.id, ImageClaim.image_id.in_(dropped)
            )
        )
    previous = session.get(Queue, batch.queue_id) if batch.queue_id is not None else None
    batch.queue_id = queue.id
    batch.overlap = queue.overlap
    batch.gold = queue.gold
    batch.size = items - len(dropped)
    batch.params = {**(batch.params or {}), "task": task}
    session.flush()
    events.record(
        session,
        "batch.assigned",
        "batch",
        batch.id,
        actor=actor,
        details={
            "from_queue": previous.name if previous is not None else None,
            "queue": queue.name,
            "task": task,
            "dropped": dropped,
        },
    )
    return _change(session, batch.id, queue, task, dropped)


def _change(
    session: Session, batch_id: int, queue: Queue, task: str, dropped: list[int]
) -> BatchChange:
    batch = lifecycle.get_batch(session, batch_id)
    return BatchChange(
        id=batch.id,
        status=batch.status,
        queue=queue.name,
        task=task,
        size=batch.size,
        released=len(dropped),
        dropped=dropped,
    )
