"""Push a batch to Label Studio as tasks, page by page, resumable after any failure.

One Label Studio project per queue (a queue is pinned to one guideline version, so a new
version means a new project). Each item becomes a task whose ``data`` holds exactly two
fields: ``dataops_item``, the item's task key (a random 128-bit token, see
``dataops.labeling.tasks``), and ``image``, a signed, expiring URL that names only that key.
Gold and regular tasks look alike (see ``review``), and the tasks of a push are imported in a
seeded shuffle. How many annotators Label Studio asks for is set per task (its ``overlap``) to
the item's ``required_annotations``, so overlap costs only its share. Label Studio ignores
caller ids, never deduplicates imports and reuses task ids, so before importing a page we look
its task keys up in the project and import only the missing ones; the task ids are stored in
the same transaction as the page. A push repeated or resumed after any failure creates no
duplicate.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dataops.db import Transaction, utcnow
from dataops.errors import NotFound
from dataops.events import service as events
from dataops.labeling import service as labeling
from dataops.labeling.models import Guideline, Queue
from dataops.labelstudio.errors import BatchHasNoQueue, LabelStudioError
from dataops.labelstudio.review import plan_review_items
from dataops.labelstudio.schemas import PushRequest
from dataops.labelstudio.service import (
    KEY_FIELD,
    Progress,
    chunks,
    client_for,
    rank,
)
from dataops.labelstudio.webhooks import WEBHOOK_HEADER, webhook_secret, webhook_url
from dataops.selection import lifecycle
from dataops.selection.models import BatchItem

if TYPE_CHECKING:
    from dataops.labelstudio.client import LabelStudioClient

log = logging.getLogger(__name__)

# Label Studio refuses longer project titles.
_TITLE_MAX = 50


@dataclass(frozen=True)
class PushPlan:
    """What every page of one push needs, read once at the start."""

    batch_id: int
    queue_id: int
    project_id: int
    kind: str
    classes: list[str]
    model_version_id: int | None
    model_version: str | None
    items: int
    pending: list[int]
    default_overlap: int = 1


def _project_title(queue: Queue, guideline: Guideline) -> str:
    suffix = f" ({guideline.name} v{guideline.version})"
    if len(suffix) > _TITLE_MAX // 2:
        suffix = f" (v{guideline.version})"
    return queue.name[: _TITLE_MAX - len(suffix)] + suffix


def ensure_project(
    session: Session,
    client: LabelStudioClient,
    queue: Queue,
    *,
    actor: str | None = None,
) -> int:
    """The queue's project, created on first use with the guideline's labeling config.

    ``maximum_annotations`` is 1 and the overlap cohort 100 %, and they never change: Label
    Studio re-draws every task's overlap when either changes. Each task's own ``overlap`` is
    set at push to its item's required answers. The webhook is registered when the project is
    created; if Label Studio refuses it (SSRF protection on a loopback URL), polling alone
    keeps the sync going.
    """
    if queue.ls_project_id is not None:
        client.get_project(queue.ls_project_id)
        return queue.ls_project_id
    locked = session.scalar(select(Queue).where(Queue.id == queue.id).with_for_update())
    if locked is not None and locked.ls_project_id is not None:
        return locked.ls_project_id
    guideline = session.get(Guideline, queue.guideline_id)
    if guideline is None:
        raise NotFound(f"queue {queue.name!r} names a missing guideline")
    project_id = client.create_project(
        _project_title(queue, guideline),
        guideline.label_config,
        maximum_annotations=1,
        description=(
            f"dataops queue {queue.name} (id {queue.id}); guideline "
            f"{labeling.guideline_ref(guideline)} sha256 {guideline.sha256[:12]}"
        ),
    )
    queue.ls_project_id = project_id
    session.flush()
    events.record(
        session,
        "queue.project_created",
        "queue",
        queue.id,
        actor=actor,
        details={"ls_project_id": project_id, "connection": queue.connection},
    )
    try:
        client.create_webhook(
            project_id,
            webhook_url(queue.connection),
            (WEBHOOK_HEADER, webhook_secret(queue.connection)),
        )
    except LabelStudioError as exc:
        log.warning("no webhook for project %s, polling only: %s", project_id, exc)
        events.record(
            session,
            "queue.webhook_refused",
            "queue",
            queue.id,
            actor=actor,
            details={"ls_project_id": project_id, "error": str(exc)},
        )
    return project_id


def check_pushable(session: Session, batch_id: int) -> None:
    """Fail before a job is recorded on a batch that cannot be pushed (closed, or no queue)."""
    batch = lifecycle.get_batch(session, batch_id)
    lifecycle.check_open(batch)
    if batch.queue_id is None:
        raise BatchHasNoQueue(batch.id)


def prepare_push(
    session: Session, client: LabelStudioClient, batch_id: int, *, actor: str | None = None
) -> PushPlan:
    """Make sure the project exists, plan overlap and gold, give every item its task key, and
    list the items still to push in push order."""
    from dataops.labeling import tasks
    from dataops.scoring.models import ModelVersion

    batch = lifecycle.get_batch(session, batch_id, lock=True)
    lifecycle.check_open(batch)
    if batch.queue_id is None:
        raise BatchHasNoQueue(batch.id)
    queue = session.get(Queue, batch.queue_id)
    guideline = session.get(Guideline, queue.guideline_id) if queue is not None else None
    if queue is None or guideline is None:
        raise NotFound(f"batch {batch.id} names a missing queue or guideline")
    project_id = ensure_project(session, client, queue, actor=actor)
    batch.ls_project_id = project_id
    if batch.status == lifecycle.DRAFT:
        plan_review_items(session, batch, guideline, actor=actor)
    tasks.ensure_keys(session, batch.id, queue.id)
    items = list(
        session.execute(
            select(BatchItem.id, BatchItem.ls_task_id).where(BatchItem.batch_id == batch.id)
        )
    )
    # Gold items are mixed in: tasks go out in a seeded shuffle, not in batch order (where
    # gold comes last), so neither Label Studio task ids nor listing order point at gold.
    pending = sorted(
        (item_id for item_id, task_id in items if task_id is None),
        key=lambda item_id: rank("order", batch.seed, batch.id, item_id),
    )
    model = (
        session.get(ModelVersion, batch.model_version_id)
        if batch.model_version_id is not None
        else None
    )
    return PushPlan(
        batch_id=batch.id,
        queue_id=queue.id,
        project_id=project_id,
        kind=guideline.kind,
        classes=list(guideline.classes),
        model_version_id=model.id if model is not None else None,
        model_version=f"{model.name}:v{model.version}" if model is not None else None,
        items=len(items),
        pending=pending,
        default_overlap=int(client.get_project(project_id).get("maximum_annotations") or 1),
    )


def _predictions(
    session: Session, plan: PushPlan, image_ids: list[int]
) -> dict[int, list[dict[str, Any]]]:
    """Pre-annotations from the batch's model version: the predicted class, tagged with the
    model version.

    Only classification guidelines get them (predictions hold class scores, not boxes), and
    only when the predicted class is one the guideline defines. The model's score is left out:
    regular items were picked by it (e.g. the least confident), gold items were not, so the
    score would tell them apart.
    """
    from dataops.labelstudio.client import prediction_result
    from dataops.scoring.models import Prediction

    if plan.model_version_id is None or plan.kind != "classification" or not image_ids:
        return {}
    spelling = {c.casefold(): c for c in plan.classes}
    rows = session.execute(
        select(Prediction.image_id, Prediction.predicted_class, Prediction.predicted_score).where(
            Prediction.model_version_id == plan.model_version_id,
            Prediction.image_id.in_(image_ids),
        )
    )
    out: dict[int, list[dict[str, Any]]] = {}
    for image_id, predicted, _score in rows:
        label = spelling.get(str(predicted).casefold())
        if label is None:
            continue
        out[image_id] = [
            {
                "model_version": plan.model_version,
                "result": prediction_result("classification", label=label),
            }
        ]
    return out


def push_page(
    session: Session,
    client: LabelStudioClient,
    plan: PushPlan,
    item_ids: list[int],
    *,
    actor: str | None = None,
) -> dict[str, int]:
    """Create the tasks of one page that Label Studio does not hold yet, in push order; set
    each task's overlap to its required answers; record every task id.

    The batch row is locked for the page, so two pushes of one batch cannot both import it.
    """
    from dataops.labeling import tasks as task_keys
    from dataops.labeling.models import TaskKey

    # A batch cancelled while its push runs gets no more tasks.
    lifecycle.check_open(lifecycle.get_batch(session, plan.batch_id, lock=True))
    order = {item_id: n for n, item_id in enumerate(item_ids)}
    rows: list[tuple[BatchItem, str]] = sorted(
        (
            (item, key)
            for item, key in session.execute(
                select(BatchItem, TaskKey.key)
                .join(TaskKey, TaskKey.batch_item_id == BatchItem.id)
                .where(BatchItem.id.in_(item_ids), BatchItem.ls_task_id.is_(None))
            )
        ),
        key=lambda row: order[row[0].id],
    )
    if not rows:
        return {"created": 0, "existing": 0}
    found = client.find_tasks_by_key(plan.project_id, KEY_FIELD, [key for _, key in rows])
    missing = [(item, key) for item, key in rows if key not in found]
    predictions = _predictions(session, plan, [item.image_id for item, _ in missing])
    now = int(time.time())
    tasks: list[dict[str, Any]] = []
    for item, key in missing:
        task: dict[str, Any] = {
            "data": {"image": task_keys.media_link(key, now=now).url, KEY_FIELD: key}
        }
        if item.image_id in predictions:
            task["predictions"] = predictions[item.image_id]
        tasks.append(task)
    created = client.import_tasks(plan.project_id, tasks)
    task_ids = dict(found)
    task_ids.update(zip((key for _, key in missing), created, strict=True))
    pushed_at = utcnow()
    for item, key in rows:
        wanted = max(1, item.required_annotations)
        # A task found from an earlier, interrupted page may have missed its overlap.
        if wanted != plan.default_overlap or key in found:
            client.set_task_overlap(task_ids[key], wanted)
        item.ls_task_id = task_ids[key]
        item.pushed_at = pushed_at
    session.flush()
    counts = {"created": len(created), "existing": len(rows) - len(created)}
    events.record(
        session,
        "batch.tasks_pushed",
        "batch",
        plan.batch_id,
        actor=actor,
        details={"ls_project_id": plan.project_id, **counts},
    )
    return counts


def finish_push(session: Session, plan: PushPlan, *, actor: str | None = None) -> dict[str, Any]:
    """Mark the batch sent once every item is a task (annotations may already be waiting)."""
    batch = lifecycle.get_batch(session, plan.batch_id, lock=True)
    waiting = session.scalar(
        select(func.count()).where(BatchItem.batch_id == batch.id, BatchItem.ls_task_id.is_(None))
    )
    if not waiting and lifecycle.mark_sent(session, batch, project_id=plan.project_id, actor=actor):
        lifecycle.advance(session, batch, actor=actor)
    return lifecycle.batch_summary(session, batch.id)


def _connection_of_batch(session: Session, batch_id: int) -> str:
    batch = lifecycle.get_batch(session, batch_id)
    queue = session.get(Queue, batch.queue_id) if batch.queue_id is not None else None
    if queue is None:
        raise BatchHasNoQueue(batch.id)
    return queue.connection


def push_batch(
    request: PushRequest,
    *,
    transaction: Transaction,
    actor: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Push a batch page by page, one committed transaction per page; safe to re-run."""
    batch_id, page_size = request.batch_id, request.page_size
    with transaction() as session:
        connection = _connection_of_batch(session, batch_id)
    with client_for(connection) as client:
        with transaction() as session:
            plan = prepare_push(session, client, batch_id, actor=actor)
        done = plan.items - len(plan.pending)
        created = existing = 0
        if progress is not None:
            progress(done, plan.items)
        for page in chunks(plan.pending, page_size):
            with transaction() as session:
                counts = push_page(session, client, plan, page, actor=actor)
            created += counts["created"]
            existing += counts["existing"]
            done += len(page)
            if progress is not None:
                progress(done, plan.items)
        with transaction() as session:
            summary = finish_push(session, plan, actor=actor)
    return {
        **summary,
        "created": created,
        "existing": existing,
        "pushed_before": plan.items - len(plan.pending),
    }
