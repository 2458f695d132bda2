"""Push batches to Label Studio as tasks and pull their annotations back as label versions.

Both directions are long and must survive a crash or an outage half-way, so they run page by
page and the caller commits each page (``transaction`` is a factory of committing sessions,
e.g. ``JobContext.session``); the page functions only flush.

Push: one Label Studio project per queue (a queue is pinned to one guideline version, so a new
version means a new project). Each item becomes a task whose ``data`` holds exactly two
fields: ``dataops_item``, the item's task key (a random 128-bit token, see
``dataops.labeling.tasks``), and ``image``, a signed, expiring URL that names only that key.
Gold and regular tasks look alike: the same key shape, the same data fields, the same kind of
pre-annotation (model version and class, no score: the score is what picked the regular items),
overlap drawn from all items alike, and the tasks of a push are imported in a seeded shuffle.
How many annotators Label Studio asks for is set per task (its ``overlap``) to the item's
``required_annotations``, so overlap costs only its share. Label Studio ignores caller ids,
never deduplicates imports and reuses task ids, so before importing a page we look its task
keys up in the project and import only the missing ones; the task ids are stored in the same
transaction as the page. A push repeated or resumed after any failure creates no duplicate.

Pull: tasks changed since the queue's ``pull_cursor`` (inclusive; the cursor advances only when
a page commits). Each annotation becomes a label version keyed on (connection, annotation id,
updated_at): a repeated pull stores nothing new, an edit stores exactly one new version that
supersedes the annotator's previous one. The annotator is the Label Studio user who wrote
that version (``updated_by``; ``completed_by`` is stored as the client sends it). Skipped
(cancelled) annotations are no labels: each is recorded once as a ``label.skipped`` audit event
on the batch. Deletions are appended as ``deleted`` versions, never erased: deleting an
annotation bumps its task's ``updated_at``, so a pull sees the task without it; the webhook
reports deletions sooner; a full pull (``full=True``) also catches tasks deleted outright.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dataops.config import get_settings
from dataops.db import utcnow
from dataops.errors import DataopsError, Forbidden, NotFound
from dataops.events import service as events
from dataops.events.models import Event
from dataops.labeling import service as labeling
from dataops.labeling.errors import InvalidLabel
from dataops.labeling.models import (
    ACCEPTED,
    ADJUDICATED,
    DELETED,
    Annotator,
    Guideline,
    LabelVersion,
    Queue,
)
from dataops.labelstudio.errors import LabelStudioError
from dataops.selection import lifecycle
from dataops.selection.models import Batch, BatchItem

if TYPE_CHECKING:
    from dataops.jobs.runner import JobContext
    from dataops.labelstudio.client import LabelStudioClient, NormalisedAnnotation
    from dataops.labelstudio.config import TaskKind

log = logging.getLogger(__name__)

Transaction = Callable[[], AbstractContextManager[Session]]
Progress = Callable[[int, int], None]

KEY_FIELD = "dataops_item"
SOURCE = labeling.SOURCE_LABELSTUDIO
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
WEBHOOK_HEADER = "X-Dataops-Webhook-Secret"
# Label Studio refuses longer project titles.
_TITLE_MAX = 50
_MAX_REPORTED_ERRORS = 20


# --- connections and webhook secrets --------------------------------------------------------


def client_for(connection: str) -> LabelStudioClient:
    """A client for a queue's Label Studio instance, proven to answer before any work starts."""
    from dataops.labelstudio.client import LabelStudioClient

    settings = get_settings()
    labeling.check_connection(connection)
    if connection == labeling.DEFAULT_CONNECTION:
        url, token = settings.labelstudio_url, settings.labelstudio_token
        hint = "set DATAOPS_LABELSTUDIO_URL and DATAOPS_LABELSTUDIO_TOKEN"
    else:
        named = settings.labelstudio_connections[connection]
        url, token = named.url, named.token
        hint = f"set DATAOPS_LABELSTUDIO_CONNECTIONS__{connection.upper()}__URL and __TOKEN"
    if not url or token is None:
        raise DataopsError(f"Label Studio connection {connection!r} is not configured: {hint}")
    return LabelStudioClient.connect(url, token.get_secret_value())


def webhook_secret(connection: str) -> str:
    """The header value Label Studio sends us back; derived, so nothing extra is configured."""
    message = f"dataops:labelstudio-webhook:v1:{connection}".encode()
    return hmac.new(get_settings().signing_key(), message, hashlib.sha256).hexdigest()


def check_webhook_secret(connection: str, presented: str | None) -> None:
    """Label Studio signs nothing, so the secret header is the only proof of the sender."""
    expected = webhook_secret(connection).encode()
    if not hmac.compare_digest(expected, (presented or "").encode()):
        raise Forbidden(f"missing or wrong {WEBHOOK_HEADER} header")


def webhook_url(connection: str) -> str:
    return f"{get_settings().public_url.rstrip('/')}/v1/labelstudio/webhook/{connection}"


def _chunks(values: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(values)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _page_size(value: Any) -> int:
    size = int(value)
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise DataopsError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {size}")
    return size


def _rank(*parts: object) -> str:
    """A stable pseudo-random order: the same seed and keys always give the same choice."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def _share(fraction: float, total: int) -> int:
    if fraction <= 0 or total <= 0:
        return 0
    return min(total, max(1, math.floor(fraction * total + 0.5)))


# --- push -----------------------------------------------------------------------------------


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


def _gold_candidates(
    session: Session, guideline: Guideline, exclude: set[int]
) -> list[tuple[int, int, str]]:
    """(image id, label version id, sha256) of images whose accepted label is a valid answer."""
    from dataops.catalog.models import OK, Image

    classes = {c.casefold() for c in guideline.classes}
    versions = [
        v
        for v in labeling.live_versions(session, task=guideline.name)
        if v.status in (ACCEPTED, ADJUDICATED) and v.image_id not in exclude
    ]
    answers: dict[int, LabelVersion] = {}
    for version in versions:
        payload = version.payload
        if guideline.kind == "classification":
            valid = str(payload.get("class", "")).casefold() in classes
        else:
            valid = all(str(b.get("class", "")).casefold() in classes for b in payload["boxes"])
        current = answers.get(version.image_id)
        # Prefer an adjudicated answer, then the newest.
        if valid and (
            current is None
            or (version.status == ADJUDICATED, version.id)
            > (current.status == ADJUDICATED, current.id)
        ):
            answers[version.image_id] = version
    found: list[tuple[int, int, str]] = []
    for chunk in _chunks(sorted(answers), 500):
        rows = session.execute(
            select(Image.id, Image.sha256).where(Image.id.in_(chunk), Image.status == OK)
        )
        found.extend((image_id, answers[image_id].id, sha) for image_id, sha in rows)
    return found


def _predicted(
    session: Session, model_version_id: int | None, kind: str, classes: list[str], ids: list[int]
) -> dict[int, str]:
    """The class each image's pre-annotation will show (see ``_predictions``)."""
    from dataops.scoring.models import Prediction

    if model_version_id is None or kind != "classification" or not ids:
        return {}
    known = {c.casefold() for c in classes}
    found: dict[int, str] = {}
    for chunk in _chunks(sorted(ids), 500):
        rows = session.execute(
            select(Prediction.image_id, Prediction.predicted_class).where(
                Prediction.model_version_id == model_version_id, Prediction.image_id.in_(chunk)
            )
        )
        found.update(
            (image_id, str(cls).casefold())
            for image_id, cls in rows
            if str(cls).casefold() in known
        )
    return found


def _apportion(counts: Counter[str], total: int) -> dict[str, int]:
    """``total`` split in proportion to ``counts`` (largest remainder, ties by name)."""
    whole = sum(counts.values())
    if not whole or total <= 0:
        return {}
    exact = {name: total * n / whole for name, n in counts.items()}
    out = {name: math.floor(value) for name, value in exact.items()}
    left = total - sum(out.values())
    for name in sorted(exact, key=lambda n: (out[n] - exact[n], n))[:left]:
        out[name] += 1
    return out


def _pick_gold(
    session: Session,
    batch: Batch,
    guideline: Guideline,
    regular: list[BatchItem],
    candidates: list[tuple[int, int, str]],
    wanted: int,
) -> list[tuple[int, int, str]]:
    """Gold whose pre-annotations look like the regular items': the same share with and
    without one (a side short of candidates leaves gold missing), and the predicted classes in
    the regular items' proportions as far as the pool allows (an uncertainty batch leans to
    some classes; gold drawn at random would not)."""
    candidates = sorted(candidates, key=lambda c: _rank("gold", batch.seed, batch.id, c[2]))
    predicted = _predicted(
        session,
        batch.model_version_id,
        guideline.kind,
        list(guideline.classes),
        [i.image_id for i in regular] + [c[0] for c in candidates],
    )
    if not predicted:
        return candidates[:wanted]
    shown = Counter(predicted[i.image_id] for i in regular if i.image_id in predicted)
    with_prediction = math.floor(sum(shown.values()) / max(1, len(regular)) * wanted + 0.5)
    pool = [c for c in candidates if c[0] in predicted]
    chosen: list[tuple[int, int, str]] = []
    for name, count in sorted(_apportion(shown, with_prediction).items()):
        chosen += [c for c in pool if predicted[c[0]] == name][:count]
    taken = {c[0] for c in chosen}
    chosen += [c for c in pool if c[0] not in taken][: with_prediction - len(chosen)]
    chosen += [c for c in candidates if c[0] not in predicted][: wanted - with_prediction]
    return sorted(chosen, key=lambda c: _rank("gold", batch.seed, batch.id, c[2]))


def plan_review_items(
    session: Session, batch: Batch, guideline: Guideline, *, actor: str | None = None
) -> dict[str, int]:
    """Add the gold items, then choose the overlap items among all of them, once, before the
    first push.

    Both are chosen deterministically from the batch seed. Gold items are images with an
    accepted label that the queue's vendor was not shown within ``gold_repeat_days`` (a
    repeat would mark them), added with the same kind of task key as any other item. Overlap
    items (two annotators) are drawn from regular and gold items alike, so the overlap a task
    gets says nothing about gold either.
    """
    items = list(session.scalars(select(BatchItem).where(BatchItem.batch_id == batch.id)))
    planned = {"overlap_items": 0, "gold_items": 0, "gold_missing": 0}
    if any(item.ls_task_id is not None for item in items):
        return planned
    from dataops.catalog.models import Image
    from dataops.labeling import tasks

    regular = [item for item in items if not item.is_gold]
    if batch.gold > 0 and not any(item.is_gold for item in items):
        wanted = _share(batch.gold, len(regular))
        exclude = {i.image_id for i in items}
        queue = session.get(Queue, batch.queue_id) if batch.queue_id is not None else None
        if queue is not None:
            exclude |= tasks.shown_to_vendor(
                session, queue.vendor_id, days=get_settings().gold_repeat_days
            )
        candidates = _gold_candidates(session, guideline, exclude)
        position = max((item.position for item in items), default=-1)
        for image_id, version_id, _sha in _pick_gold(
            session, batch, guideline, regular, candidates, wanted
        ):
            position += 1
            gold = BatchItem(
                batch_id=batch.id,
                image_id=image_id,
                item_key=_rank("dataops-item", batch.id, image_id),
                position=position,
                is_gold=True,
                gold_label_version_id=version_id,
                required_annotations=1,
            )
            session.add(gold)
            items.append(gold)
            planned["gold_items"] += 1
        planned["gold_missing"] = wanted - planned["gold_items"]
        session.flush()
    if batch.overlap > 0 and not any(item.is_overlap for item in items):
        shas = dict(
            session.execute(
                select(Image.id, Image.sha256)
                .join(BatchItem, BatchItem.image_id == Image.id)
                .where(BatchItem.batch_id == batch.id)
            ).all()
        )
        chosen = sorted(items, key=lambda i: _rank("overlap", batch.seed, shas[i.image_id]))
        for item in chosen[: _share(batch.overlap, len(items))]:
            item.is_overlap = True
            planned["overlap_items"] += 1
    for item in items:
        if item.is_overlap:
            item.required_annotations = max(item.required_annotations, 2)
    session.flush()
    if planned["overlap_items"] or planned["gold_items"] or planned["gold_missing"]:
        events.record(session, "batch.planned", "batch", batch.id, actor=actor, details=planned)
    return planned


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
        raise DataopsError(
            f"batch {batch.id} has no vendor queue; give it one with `dataops batches assign "
            f"{batch.id} --queue Q` (or cancel it: `dataops batches cancel {batch.id}`)"
        )
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
        key=lambda item_id: _rank("order", batch.seed, batch.id, item_id),
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
        raise DataopsError(
            f"batch {batch.id} has no vendor queue; give it one with `dataops batches assign "
            f"{batch.id} --queue Q` (or cancel it: `dataops batches cancel {batch.id}`)"
        )
    return queue.connection


def push_batch(
    batch_id: int,
    *,
    transaction: Transaction,
    actor: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Push a batch page by page, one committed transaction per page; safe to re-run."""
    page_size = _page_size(page_size)
    with transaction() as session:
        connection = _connection_of_batch(session, batch_id)
    with client_for(connection) as client:
        with transaction() as session:
            plan = prepare_push(session, client, batch_id, actor=actor)
        done = plan.items - len(plan.pending)
        created = existing = 0
        if progress is not None:
            progress(done, plan.items)
        for page in _chunks(plan.pending, page_size):
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


# --- pull -----------------------------------------------------------------------------------


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
        cursor=lifecycle.as_utc(queue.pull_cursor),
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
    recorded: set[tuple[str, str]],
    actor: str | None,
) -> bool:
    stamp = version["updated_at"].isoformat()
    if (source_id, stamp) in recorded:
        return False
    recorded.add((source_id, stamp))
    events.record(
        session,
        lifecycle.SKIPPED_ACTION,
        "batch",
        item.batch_id,
        actor=actor,
        details={
            "source": SOURCE,
            "source_id": source_id,
            "source_updated_at": stamp,
            "item_key": item.item_key,
            "image_id": item.image_id,
            "annotator_id": annotator_id,
        },
    )
    return True


def _recorded_skips(session: Session, batch_ids: set[int]) -> set[tuple[str, str]]:
    return {
        (str(details.get("source_id")), str(details.get("source_updated_at")))
        for details in session.scalars(
            select(Event.details).where(
                Event.action == lifecycle.SKIPPED_ACTION,
                Event.entity_type == "batch",
                Event.entity_id.in_([str(b) for b in sorted(batch_ids)]),
            )
        )
    }


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
            stamp = lifecycle.as_utc(updated_at)
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
    skips = _recorded_skips(session, {item.batch_id for item, _, _ in found})
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
    current = lifecycle.as_utc(queue.pull_cursor)
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


def record_deletions(
    session: Session,
    connection: str,
    project_id: int,
    annotation_ids: Iterable[int],
    *,
    actor: str | None = None,
) -> tuple[int | None, int]:
    """Deletions reported by the webhook: (queue id or None, deletion records appended).

    Only annotations stored for this project's queue are marked: the secret is per
    connection, so a payload naming one project must not delete another project's labels.
    """
    queue = session.scalar(
        select(Queue).where(Queue.connection == connection, Queue.ls_project_id == project_id)
    )
    if queue is None:
        return None, 0
    named = [labeling.labelstudio_source_id(connection, a) for a in annotation_ids]
    ours = _annotations_of_queue(session, queue.id, named)
    marked = 0
    for source_id in named:
        if source_id not in ours:
            continue
        _, created = labeling.mark_deleted(
            session, source=SOURCE, source_id=source_id, deleted_at=utcnow(), actor=actor
        )
        marked += int(created)
    return queue.id, marked


def _annotations_of_queue(session: Session, queue_id: int, source_ids: list[str]) -> set[str]:
    """The given annotations that the catalog stored for batches of this queue."""
    ours: set[str] = set()
    for start in range(0, len(source_ids), 500):
        chunk = source_ids[start : start + 500]
        ours.update(
            session.scalars(
                select(LabelVersion.source_id)
                .join(Batch, Batch.id == LabelVersion.batch_id)
                .where(
                    LabelVersion.source == SOURCE,
                    LabelVersion.source_id.in_(chunk),
                    Batch.queue_id == queue_id,
                )
                .distinct()
            )
        )
    return ours


def queue_for_project(session: Session, connection: str, project_id: int) -> int | None:
    return session.scalar(
        select(Queue.id).where(Queue.connection == connection, Queue.ls_project_id == project_id)
    )


def pull_queue(
    queue_ref: int | str,
    *,
    transaction: Transaction,
    actor: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    full: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Pull every annotation changed since the queue's cursor (``full``: everything, and mark
    what disappeared as deleted); one committed transaction per page."""
    page_size = _page_size(page_size)
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
            for tasks in _chunks(listing, page_size):
                with transaction() as session:
                    pull_page(session, client, plan, tasks, state, actor=actor)
                if progress is not None:
                    progress(state.tasks, state.tasks)
        if full:
            with transaction() as session:
                state.deleted += reconcile_deletions(session, plan, state.seen, actor=actor)
    with transaction() as session:
        cursor = lifecycle.as_utc(
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


def pull_batch(
    batch_id: int,
    *,
    transaction: Transaction,
    actor: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    full: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """A batch lives in its queue's project, so pulling it pulls the queue; reports the batch."""
    with transaction() as session:
        batch = lifecycle.get_batch(session, batch_id)
        if batch.queue_id is None:
            raise DataopsError(f"batch {batch.id} has no vendor queue, so nothing to pull")
        queue_id = batch.queue_id
    result = pull_queue(
        queue_id,
        transaction=transaction,
        actor=actor,
        page_size=page_size,
        full=full,
        progress=progress,
    )
    with transaction() as session:
        result["batch"] = lifecycle.batch_summary(session, batch_id)
    return result


# --- jobs -----------------------------------------------------------------------------------


def pending_pull(session: Session, queue_id: int) -> str | None:
    """A pull of this queue that has not started yet will see any change made up to now."""
    from dataops.jobs.models import PENDING, Job

    for job in session.scalars(select(Job).where(Job.kind == "sync", Job.status == PENDING)):
        params = job.params or {}
        if params.get("action") == "pull" and params.get("queue_id") == queue_id:
            return job.id
    return None


def poll_open_queues(*, actor: str = "system:labelstudio-poll") -> list[str]:
    """Submit a pull for every queue with a batch out at the vendor (the periodic safety net)."""
    from dataops.db import session_scope
    from dataops.jobs import runner

    with session_scope() as session:
        queue_ids = sorted(
            {
                queue_id
                for queue_id in session.scalars(
                    select(Batch.queue_id).where(Batch.status.in_(lifecycle.SYNCED_STATUSES))
                )
                if queue_id is not None
            }
        )
        waiting = {queue_id for queue_id in queue_ids if pending_pull(session, queue_id)}
    jobs = []
    for queue_id in queue_ids:
        if queue_id not in waiting:
            job = runner.submit("sync", {"action": "pull", "queue_id": queue_id}, actor=actor)
            jobs.append(job.id)
    return jobs


def run_sync_job(ctx: JobContext) -> dict[str, Any]:
    """Job handler. Params: ``{"action": "push", "batch_id"}``, ``{"action": "pull",
    "batch_id"}`` or ``{"action": "pull", "queue_id", "full"?}``; ``page_size`` optional."""
    params = ctx.params
    action = params.get("action")
    page_size = _page_size(params.get("page_size", DEFAULT_PAGE_SIZE))

    def progress(done: int, total: int) -> None:
        ctx.progress(done, total, f"{action}")

    if action == "push":
        return push_batch(
            int(params["batch_id"]),
            transaction=ctx.session,
            actor=ctx.actor,
            page_size=page_size,
            progress=progress,
        )
    if action == "pull" and params.get("batch_id") is not None:
        return pull_batch(
            int(params["batch_id"]),
            transaction=ctx.session,
            actor=ctx.actor,
            page_size=page_size,
            full=bool(params.get("full")),
            progress=progress,
        )
    if action == "pull" and params.get("queue_id") is not None:
        return pull_queue(
            params["queue_id"],
            transaction=ctx.session,
            actor=ctx.actor,
            page_size=page_size,
            full=bool(params.get("full")),
            progress=progress,
        )
    raise DataopsError(
        "a sync job needs action 'push' with batch_id, or 'pull' with batch_id or queue_id"
    )
