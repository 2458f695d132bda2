"""Which labeling task a request is about.

A queue labels one task: its guideline's name, the name pulled labels are stored under. A
selection for a queue is for that task; one without a queue names its task or uses the only
one there is. A manifest freezes one task: the one its batches were for, else the only task
with accepted labels. When the choice is not obvious the request is refused with the list
of tasks that exist, never answered for a task nobody meant (``default``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dataops.labeling.models import ACCEPTED, ADJUDICATED, Guideline, LabelVersion, Queue
from dataops.selection.errors import InvalidSelection, TaskUnclear, literal
from dataops.selection.models import Batch

DEFAULT_TASK = "default"


def queue_task(session: Session, queue: Queue) -> str:
    """The task a queue labels: its guideline's name."""
    name = session.scalar(select(Guideline.name).where(Guideline.id == queue.guideline_id))
    if name is None:
        raise InvalidSelection(f"queue {queue.name!r} names a missing guideline")
    return name


def known_tasks(session: Session) -> list[str]:
    """Every task something refers to: the queues' guidelines and the stored labels."""
    queued = session.scalars(
        select(Guideline.name).join(Queue, Queue.guideline_id == Guideline.id).distinct()
    )
    labeled = session.scalars(select(LabelVersion.task).distinct())
    return sorted({*queued, *labeled})


def selection_task(session: Session, queue: Queue | None, task: str | None) -> str:
    """The task a selection is for; refuses a ``task`` that contradicts the queue's."""
    if queue is not None:
        own = queue_task(session, queue)
        if task is not None and task != own:
            raise InvalidSelection(
                f"queue {literal(repr(queue.name))} labels task {literal(repr(own))} (its "
                f"guideline's name), not {literal(repr(task))}; drop {{task}}, or pick a queue "
                f"for {literal(repr(task))}",
                fields=("task",),
            )
        return own
    if task is not None:
        return task
    tasks = known_tasks(session)
    if len(tasks) > 1:
        raise TaskUnclear(
            f"several labeling tasks exist ({literal(', '.join(tasks))}); pass {{queue}} (its "
            "guideline names the task) or {task}",
            fields=("queue", "task"),
        )
    return tasks[0] if tasks else DEFAULT_TASK


def batch_task(session: Session, batch: Batch) -> str:
    """A batch's task: its queue's, else the one recorded when it was selected."""
    if batch.queue_id is not None:
        queue = session.get(Queue, batch.queue_id)
        if queue is not None:
            return queue_task(session, queue)
    recorded = (batch.params or {}).get("task")
    return str(recorded) if recorded else DEFAULT_TASK


def accepted_tasks(session: Session) -> dict[str, int]:
    """Tasks with accepted (or adjudicated) labels, and how many images each has."""
    rows = session.execute(
        select(LabelVersion.task, func.count(func.distinct(LabelVersion.image_id)))
        .where(LabelVersion.status.in_((ACCEPTED, ADJUDICATED)))
        .group_by(LabelVersion.task)
        .order_by(LabelVersion.task)
    )
    return {name: int(count) for name, count in rows}


def describe(tasks: dict[str, int]) -> str:
    return ", ".join(f"{name} ({count} images)" for name, count in tasks.items())


def manifest_task(session: Session, task: str | None, batch_ids: Sequence[int] | None) -> str:
    """The task a manifest freezes: given, else its batches', else the only accepted one."""
    if task is not None:
        return task
    if batch_ids:
        batches = session.scalars(select(Batch).where(Batch.id.in_(list(batch_ids))))
        found = sorted({batch_task(session, b) for b in batches})
        if len(found) == 1:
            return found[0]
        if found:
            raise TaskUnclear(
                f"batches {', '.join(map(str, sorted(batch_ids)))} are for different tasks "
                f"({literal(', '.join(found))}); a manifest freezes one: pass {{task}}",
                fields=("task",),
            )
    tasks = accepted_tasks(session)
    if len(tasks) > 1:
        raise TaskUnclear(
            f"several labeling tasks have accepted labels: {literal(describe(tasks))}; pass "
            "{task} (or {from_batches} of one task)",
            fields=("task", "from_batches"),
        )
    # None at all: the manifest is refused as empty, naming the task it looked for.
    return next(iter(tasks), DEFAULT_TASK)
