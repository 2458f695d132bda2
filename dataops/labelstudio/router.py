"""Label Studio over HTTP: push a batch, pull a queue's annotations, and receive webhooks.

Push and pull are long work: each route checks its target now and answers 202 with the id of
a `sync` job (the same job `dataops batches push|pull` runs).

Label Studio signs nothing, so each project's webhook sends a secret header
(``X-Dataops-Webhook-Secret``, derived from the signing key and the connection name) that is
compared in constant time. Annotation changes only trigger a pull of the queue (the pull reads
Label Studio itself, so a forged payload could at worst cause an extra pull); deletions can
only be seen here, so they are recorded as ``deleted`` label versions, never erased.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Header, Path, Query
from pydantic import BaseModel, Field

from dataops.api.deps import SessionDep, actor, require_roles
from dataops.api.errors import error_responses
from dataops.auth.models import User
from dataops.errors import Conflict, DataopsError, NotFound
from dataops.jobs.router import JobAccepted, accept_job
from dataops.labeling.router import QueueRef
from dataops.labeling.service import check_connection, get_queue
from dataops.labelstudio import sync
from dataops.selection import lifecycle

router = APIRouter(prefix="/v1", tags=["labelstudio"])

Ops = Annotated[User, Depends(require_roles("labeling_ops"))]
PageSize = Annotated[
    int,
    Query(ge=1, le=sync.MAX_PAGE_SIZE, description="Tasks per Label Studio request and commit."),
]
DELETED_ACTION = "ANNOTATIONS_DELETED"
_PULL_ACTIONS = frozenset({"ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED"})


class WebhookResult(BaseModel):
    action: str = Field(examples=["ANNOTATION_CREATED"])
    queue_id: int | None = Field(description="The queue whose project sent this, if any.")
    job_id: str | None = Field(description="The pull job that will pick the change up.")
    deleted: int = Field(description="Deletion records appended for ANNOTATIONS_DELETED.")


def _project_id(payload: dict[str, Any]) -> int | None:
    project = payload.get("project")
    value = project.get("id") if isinstance(project, dict) else project
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _annotation_ids(payload: dict[str, Any]) -> list[int]:
    annotations = payload.get("annotations")
    if not isinstance(annotations, list):
        raise DataopsError("ANNOTATIONS_DELETED needs a list of annotations")
    ids: list[int] = []
    for annotation in annotations:
        value = annotation.get("id") if isinstance(annotation, dict) else annotation
        if not isinstance(value, int) or isinstance(value, bool):
            raise DataopsError("every deleted annotation needs an integer id")
        ids.append(value)
    return ids


@router.post(
    "/labelstudio/webhook/{connection}",
    response_model=WebhookResult,
    summary="Receive a Label Studio webhook",
    description=(
        "Registered on each queue's project when it is created. Needs the "
        f"`{sync.WEBHOOK_HEADER}` header. Annotation changes start a pull of the queue "
        "(202-style: the job id is returned); deletions are recorded at once. Other actions "
        "are acknowledged and ignored."
    ),
    responses=error_responses(400, 403, 404, 422),
)
def labelstudio_webhook(
    connection: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")],
    payload: Annotated[dict[str, Any], Body()],
    session: SessionDep,
    background: BackgroundTasks,
    secret: Annotated[str | None, Header(alias=sync.WEBHOOK_HEADER)] = None,
) -> WebhookResult:
    sync.check_webhook_secret(connection, secret)
    try:
        check_connection(connection)
    except DataopsError:
        raise NotFound(f"no Label Studio connection {connection!r}") from None
    action = str(payload.get("action", ""))
    project_id = _project_id(payload)
    actor = f"labelstudio:{connection}"
    if project_id is None:
        return WebhookResult(action=action, queue_id=None, job_id=None, deleted=0)
    if action == DELETED_ACTION:
        queue_id, deleted = sync.record_deletions(
            session, connection, project_id, _annotation_ids(payload), actor=actor
        )
        return WebhookResult(action=action, queue_id=queue_id, job_id=None, deleted=deleted)
    queue_id = sync.queue_for_project(session, connection, project_id)
    if queue_id is None or action not in _PULL_ACTIONS:
        return WebhookResult(action=action, queue_id=queue_id, job_id=None, deleted=0)
    job_id = sync.pending_pull(session, queue_id)
    if job_id is None:
        params = {"action": "pull", "queue_id": queue_id}
        job_id = accept_job(session, background, "sync", params, actor=actor).job_id
    return WebhookResult(action=action, queue_id=queue_id, job_id=job_id, deleted=0)


@router.post(
    "/batches/{batch_id}/push",
    status_code=202,
    response_model=JobAccepted,
    summary="Push a batch to Label Studio",
    description=(
        "Checks that the batch exists, is open and belongs to a vendor queue, then starts a "
        "`sync` push job: the queue's Label Studio project is created if needed (pinned to the "
        "queue's guideline version), overlap and gold items are planned, and each item becomes "
        "a task whose image is a signed, expiring media URL. Idempotent and resumable: items "
        "already in Label Studio are not sent again, so repeat it after any failure."
    ),
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
def push_batch(
    session: SessionDep,
    background: BackgroundTasks,
    user: Ops,
    batch_id: Annotated[int, Path(ge=1, le=2**31 - 1, description="The batch id.")],
    page_size: PageSize = sync.DEFAULT_PAGE_SIZE,
) -> JobAccepted:
    batch = lifecycle.get_batch(session, batch_id)
    lifecycle.check_open(batch)
    if batch.queue_id is None:
        raise Conflict(f"batch {batch.id} has no vendor queue, so it cannot be pushed")
    params = {"action": "push", "batch_id": batch.id, "page_size": page_size}
    return accept_job(session, background, "sync", params, actor=actor(user))


@router.post(
    "/queues/{ref}/pull",
    status_code=202,
    response_model=JobAccepted,
    summary="Pull a queue's annotations",
    description=(
        "Checks that the queue exists, then starts a `sync` pull job that stores the "
        "annotations made in its Label Studio project since the last pull as label versions "
        "(recording the queue's guideline version); pulling again adds nothing new. `full` "
        "reads every task and also records annotations deleted in Label Studio."
    ),
    responses=error_responses(401, 403, 404, 422, 503),
)
def pull_queue(
    session: SessionDep,
    background: BackgroundTasks,
    user: Ops,
    ref: QueueRef,
    full: Annotated[bool, Query(description="Read every task, not only changed ones.")] = False,
    page_size: PageSize = sync.DEFAULT_PAGE_SIZE,
) -> JobAccepted:
    queue = get_queue(session, ref)
    params = {"action": "pull", "queue_id": queue.id, "full": full, "page_size": page_size}
    return accept_job(session, background, "sync", params, actor=actor(user))
