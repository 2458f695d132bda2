"""Pull a queue's annotations from Label Studio into label versions, page by page.

Tasks changed since the queue's ``pull_cursor`` (inclusive; the cursor advances only when a
page commits). Each annotation becomes a label version keyed on (connection, annotation id,
updated_at): a repeated pull stores nothing new, an edit stores exactly one new version that
supersedes the annotator's previous one. The annotator is the Label Studio user who wrote
that version (``updated_by``; ``completed_by`` is stored as the client sends it). Skipped
(cancelled) annotations are no labels: each version is recorded once in
``skipped_annotations`` and as a ``label.skipped`` audit event on the batch. Deletions are
appended as ``deleted`` versions, never erased: deleting an annotation bumps its task's
``updated_at``, so a pull sees the task without it; the webhook reports deletions sooner; a
full pull (``full=True``) also catches tasks deleted outright.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dataops.database.dialect import as_utc, as_utc_or_none, insert
from dataops.db import Transaction, utcnow
from dataops.errors import DataopsError, NotFound
from dataops.events import service as events
from dataops.labeling import service as labeling
from dataops.labeling.errors import InvalidLabel
from dataops.labeling.models import DELETED, Annotator, Guideline, LabelVersion, Queue
from dataops.labelstudio.models import SkippedAnnotation
from dataops.labelstudio.schemas import PullRequest
from dataops.labelstudio.service import (
    KEY_FIELD,
    SOURCE,
    Progress,
    chunks,
    client_for,
    recorded_skips,
)
from dataops.selection import lifecycle
from dataops.selection.models import Batch, BatchItem

if TYPE_CHECKING:
    from dataops.labelstudio.client import LabelStudioClient, NormalisedAnnotation
    from dataops.labelstudio.config import TaskKind

log = logging.getLogger(__name__)

_MAX_REPORTED_ERRORS = 20


@dataclass(frozen=True)
class PullPlan:
    queue_id: int
    connection: str
    project_id: int
    vendor_id: int
    guideline_id: int
    kind: str
    task: str
    cursor: datetime | None


@dataclass
class PullState:
    """What one pull learns as it goes: annotators already mapped, counts, and errors."""

    annotators: dict[int, int] = field(default_factory=dict)
    emails: dict[int, str] | None = None
    seen: set[str] = field(default_factory=set)
    tasks: int = 0
    annotations: int = 0
    created: int = 0
    existing: int = 0
    skipped: int = 0
    deleted: int = 0
    foreign_tasks: int = 0
    invalid: int = 0
    errors: list[str] = field(default_factory=list)

    def reject(self, annotation_id: Any, reason: str) -> None:
        self.invalid += 1
        if len(self.errors) < _MAX_REPORTED_ERRORS:
            self.errors.append(f"annotation {annotation_id}: {reason}")
        log.warning("Label Studio annotation %s not stored: %s", annotation_id, reason)


def prepare_pull(session: Session, queue: Queue) -> PullPlan | None:
    """The queue's project and cursor; None when nothing was ever pushed to it."""
    if queue.ls_project_id is None:
        return None
    guideline = session.get(Guideline, queue.guideline_id)
    if guideline is None:
        raise NotFound(f"queue {queue.name!r} names a missing guideline")
    return PullPlan(
        queue_id=queue.id,
        connection=queue.connection,
        project_id=queue.ls_project_id,
        vendor_id=queue.vendor_id,
        guideline_id=guideline.id,
        kind=guideline.kind,
        task=guideline.name,
        cursor=as_utc_or_none(queue.pull_cursor),
    )


def _annotator_id(
    session: Session,
    client: LabelStudioClient,
    plan: PullPlan,
    state: PullState,
    ls_user_id: int,
    actor: str | None,
) -> int:
    if ls_user_id not in state.annotators:
        email: str | None = None
        known = session.scalar(
            select(func.count()).where(
                Annotator.connection == plan.connection,
                Annotator.ls_user_id == ls_user_id,
            )
        )
        if not known:
            if state.emails is None:
                state.emails = {
                    int(u["id"]): str(u["email"]) for u in client.list_users() if u.get("email")
                }
            email = state.emails.get(ls_user_id)
        annotator = labeling.get_or_create_annotator(
            session,
            connection=plan.connection,
            ls_user_id=ls_user_id,
            email=email,
            vendor_id=plan.vendor_id,
            mapped_by="ls_user_id",
            actor=actor,
        )
        state.annotators[ls_user_id] = annotator.id
    return state.annotators[ls_user_id]


def _record_skip(
    session: Session,
    item: BatchItem,
    version: NormalisedAnnotation,
    source_id: str,
    annotator_id: int,
    recorded: set[tuple[str, datetime]],
    actor: str | None,
) -> bool:
    """Record a skipped annotation version once: a row to count, and the event for the log."""
    stamp = as_utc(version["updated_at"])
    if (source_id, stamp) in recorded:
        return False
    recorded.add((source_id, stamp))
    # A concurrent pull may record the same skip: whoever inserts the row writes the event.
    stmt = (
        insert(session, SkippedAnnotation)
        .values(
            batch_id=item.batch_id,
            image_id=item.image_id,
            item_key=item.item_key,
            annotator_id=annotator_id,
            source=SOURCE,
            source_id=source_id,
            source_updated_at=stamp,
        )
        .on_conflict_do_nothing(index_elements=["source", "source_id", "source_updated_at"])
    )
    if not session.execute(stmt).rowcount:  # type: ignore[attr-defined]
        return False
    events.record(
        session,
        lifecycle.SKIPPED_ACTION,
        "batch",
        item.batch_id,
        actor=actor,
        details={
            "source": SOURCE,
            "source_id": source_id,
            "source_updated_at": stamp.isoformat(),
            "item_key": item.item_key,
            "image_id": item.image_id,
            "annotator_id": annotator_id,
        },
    )
    return True


def _vanished(
    session: Session, plan: PullPlan, listed: dict[tuple[int, int], tuple[datetime, set[str]]]
) -> list[str]:
    """Stored annotations missing from a fresh listing of their task: deleted in Label Studio.

    A task lists all its annotations, and deleting one bumps the task's ``updated_at``, so a
    polled task shows deletions too. A version newer than the listed task state was stored by
    a later listing (a concurrent pull) and is left alone.
    """
    if not listed:
        return []
    rows = session.execute(
        select(
            LabelVersion.batch_id,
            LabelVersion.image_id,
            LabelVersion.source_id,
            LabelVersion.source_updated_at,
            LabelVersion.status,
        ).where(
            LabelVersion.batch_id.in_(sorted({batch for batch, _ in listed})),
            LabelVersion.image_id.in_(sorted({image for _, image in listed})),
            LabelVersion.source == SOURCE,
            LabelVersion.source_id.startswith(labeling.labelstudio_source_id(plan.connection, "")),
        )
    )
    gone: set[str] = set()
    deleted: set[str] = set()
    for batch_id, image_id, source_id, updated_at, status in rows:
        entry = listed.get((cast(int, batch_id), image_id))
        if status == DELETED:
            deleted.add(source_id)
        elif entry is not None and source_id not in entry[1]:
            stamp = as_utc_or_none(updated_at)
            if stamp is None or stamp <= entry[0]:
                gone.add(source_id)
    return sorted(gone - deleted)


def _store(
    session: Session,
    client: LabelStudioClient,
    plan: PullPlan,
    state: PullState,
    found: list[tuple[BatchItem, NormalisedAnnotation, str]],
    actor: str | None,
) -> None:
    stored = set(
        session.scalars(
            select(LabelVersion.source_key).where(
                LabelVersion.source_key.in_(
                    [labeling.source_key(SOURCE, sid, v["updated_at"]) for _, v, sid in found]
                )
            )
        )
    )
    skips = recorded_skips(session, [source_id for _, _, source_id in found])
    for item, version, source_id in found:
        if labeling.source_key(SOURCE, source_id, version["updated_at"]) in stored:
            state.existing += 1
            continue
        author = cast(int, version["ls_user_id"])
        annotator_id = _annotator_id(session, client, plan, state, author, actor)
        if version["cancelled"]:
            if _record_skip(session, item, version, source_id, annotator_id, skips, actor):
                state.skipped += 1
            else:
                state.existing += 1
            continue
        try:
            _, created = labeling.add_label_version(
                session,
                image_id=item.image_id,
                payload=version["payload"],
                source=SOURCE,
                source_id=source_id,
                source_updated_at=version["updated_at"],
                annotator_id=annotator_id,
                batch_id=item.batch_id,
                guideline_id=plan.guideline_id,
                task=plan.task,
                actor=actor,
                lead_time=version["lead_time"],
            )
        except InvalidLabel as exc:
            state.reject(version["annotation_id"], str(exc))
            continue
        if created:
            state.created += 1
        else:
            state.existing += 1


def pull_page(
    session: Session,
    client: LabelStudioClient,
    plan: PullPlan,
    tasks: list[dict[str, Any]],
    state: PullState,
    *,
    actor: str | None = None,
) -> None:
    """Store the annotations of one page of tasks, record the ones that vanished from them,
    then move the queue's cursor past the page."""
    from dataops.labeling import tasks as task_keys
    from dataops.labelstudio.client import normalise_annotation

    keys = {str(t["data"].get(KEY_FIELD)) for t in tasks if t["data"].get(KEY_FIELD)}
    items = task_keys.items_for_keys(session, keys, plan.queue_id)
    unknown = sorted(keys - set(items))
    if unknown:
        # Tasks pushed before task keys were recorded carry the item key itself.
        items.update(
            (item.item_key, item)
            for item in session.scalars(
                select(BatchItem)
                .join(Batch, Batch.id == BatchItem.batch_id)
                .where(BatchItem.item_key.in_(unknown), Batch.queue_id == plan.queue_id)
            )
        )
    found: list[tuple[BatchItem, NormalisedAnnotation, str]] = []
    listed: dict[tuple[int, int], tuple[datetime, set[str]]] = {}
    for task in tasks:
        state.tasks += 1
        item = items.get(str(task["data"].get(KEY_FIELD)))
        if item is None:
            # Not one of ours (imported by hand, or another queue's key): never guess.
            state.foreign_tasks += 1
            continue
        present: set[str] = set()
        if item.ls_task_id == task["id"]:
            listed[(item.batch_id, item.image_id)] = (task["updated_at"], present)
        for annotation in task.get("annotations") or []:
            state.annotations += 1
            source_id = labeling.labelstudio_source_id(plan.connection, annotation["id"])
            state.seen.add(source_id)
            present.add(source_id)
            try:
                version = normalise_annotation(annotation, cast("TaskKind", plan.kind))
            except ValueError as exc:
                state.reject(annotation["id"], str(exc))
                continue
            if version["ls_user_id"] is None:
                state.reject(annotation["id"], "Label Studio names no author")
                continue
            found.append((item, version, source_id))
    _store(session, client, plan, state, found, actor)
    for source_id in _vanished(session, plan, listed):
        _, marked = labeling.mark_deleted(
            session, source=SOURCE, source_id=source_id, deleted_at=utcnow(), actor=actor
        )
        state.deleted += int(marked)
    newest = max((t["updated_at"] for t in tasks), default=None)
    queue = session.scalar(select(Queue).where(Queue.id == plan.queue_id).with_for_update())
    assert queue is not None
    current = as_utc_or_none(queue.pull_cursor)
    if newest is not None and (current is None or newest > current):
        queue.pull_cursor = newest
    batch_ids = sorted({item.batch_id for item in items.values()})
    for batch in session.scalars(select(Batch).where(Batch.id.in_(batch_ids))):
        lifecycle.advance(session, batch, actor=actor)
    session.flush()


def reconcile_deletions(
    session: Session, plan: PullPlan, seen: set[str], *, actor: str | None = None
) -> int:
    """After a full listing: every stored annotation Label Studio no longer has was deleted."""
    prefix = labeling.labelstudio_source_id(plan.connection, "")
    batch_ids = select(Batch.id).where(Batch.queue_id == plan.queue_id)
    stored = set(
        session.scalars(
            select(LabelVersion.source_id).where(
                LabelVersion.batch_id.in_(batch_ids),
                LabelVersion.source == SOURCE,
                LabelVersion.source_id.startswith(prefix),
                LabelVersion.status != DELETED,
            )
        )
    )
    deleted = set(
        session.scalars(
            select(LabelVersion.source_id).where(
                LabelVersion.batch_id.in_(batch_ids),
                LabelVersion.source == SOURCE,
                LabelVersion.status == DELETED,
            )
        )
    )
    marked = 0
    for source_id in sorted(stored - deleted - seen):
        _, created = labeling.mark_deleted(
            session, source=SOURCE, source_id=source_id, deleted_at=utcnow(), actor=actor
        )
        marked += int(created)
    return marked


def pull(
    request: PullRequest,
    *,
    transaction: Transaction,
    actor: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Pull a queue (a batch pulls its queue, and its summary is added to the report)."""
    if request.queue_id is not None:
        return _pull_queue(request.queue_id, request, transaction, actor, progress)
    assert request.batch_id is not None
    with transaction() as session:
        batch = lifecycle.get_batch(session, request.batch_id)
        if batch.queue_id is None:
            raise DataopsError(f"batch {batch.id} has no vendor queue, so nothing to pull")
        queue_id = batch.queue_id
    result = _pull_queue(queue_id, request, transaction, actor, progress)
    with transaction() as session:
        result["batch"] = lifecycle.batch_summary(session, request.batch_id)
    return result


def _pull_queue(
    queue_ref: int | str,
    request: PullRequest,
    transaction: Transaction,
    actor: str | None,
    progress: Progress | None,
) -> dict[str, Any]:
    """Pull every annotation changed since the queue's cursor (``full``: everything, and mark
    what disappeared as deleted); one committed transaction per page."""
    page_size, full = request.page_size, request.full
    with transaction() as session:
        queue = labeling.get_queue(session, queue_ref)
        queue_id = queue.id
        plan = prepare_pull(session, queue)
    state = PullState()
    if plan is not None:
        with client_for(plan.connection) as client:
            listing = client.list_tasks(
                plan.project_id, None if full else plan.cursor, page_size=page_size
            )
            for tasks in chunks(listing, page_size):
                with transaction() as session:
                    pull_page(session, client, plan, tasks, state, actor=actor)
                if progress is not None:
                    progress(state.tasks, state.tasks)
        if full:
            with transaction() as session:
                state.deleted += reconcile_deletions(session, plan, state.seen, actor=actor)
    with transaction() as session:
        cursor = as_utc_or_none(
            session.scalar(select(Queue.pull_cursor).where(Queue.id == queue_id))
        )
        statuses = {
            b.id: b.status for b in session.scalars(select(Batch).where(Batch.queue_id == queue_id))
        }
    return {
        "queue_id": queue_id,
        "ls_project_id": plan.project_id if plan is not None else None,
        "tasks": state.tasks,
        "annotations": state.annotations,
        "created": state.created,
        "existing": state.existing,
        "skipped": state.skipped,
        "deleted": state.deleted,
        "foreign_tasks": state.foreign_tasks,
        "invalid": state.invalid,
        "errors": state.errors,
        "cursor": cursor.isoformat() if cursor is not None else None,
        "batches": {str(k): v for k, v in sorted(statuses.items())},
    }
