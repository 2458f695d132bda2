"""Label Studio over HTTP: push a batch, pull a queue's annotations, and receive webhooks.

Push and pull are long work: each route checks its target now and answers 202 with the id of
a `sync` job (the same job `dataops batches push|pull` runs). The webhook rules live in
``webhooks``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Header, Path, Query

from dataops.api.deps import SessionDep, actor, require_roles
from dataops.api.errors import error_responses
from dataops.auth.models import User
from dataops.jobs.router import accept_job
from dataops.jobs.schemas import JobAccepted
from dataops.labeling.router import QueueRef
from dataops.labeling.service import get_queue
from dataops.labelstudio import webhooks
from dataops.labelstudio.push import check_pushable
from dataops.labelstudio.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    PullRequest,
    PushRequest,
    WebhookResult,
)

router = APIRouter(prefix="/v1", tags=["labelstudio"])

Ops = Annotated[User, Depends(require_roles("labeling_ops"))]
PageSize = Annotated[
    int,
    Query(ge=1, le=MAX_PAGE_SIZE, description="Tasks per Label Studio request and commit."),
]


@router.post(
    "/labelstudio/webhook/{connection}",
    response_model=WebhookResult,
    summary="Receive a Label Studio webhook",
    description=(
        "Registered on each queue's project when it is created. Needs the "
        f"`{webhooks.WEBHOOK_HEADER}` header. Annotation changes start a pull of the queue "
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
    secret: Annotated[str | None, Header(alias=webhooks.WEBHOOK_HEADER)] = None,
) -> WebhookResult:
    def start_pull(request: PullRequest) -> str:
        params = request.model_dump(exclude_none=True)
        return accept_job(
            session, background, "sync", params, actor=f"labelstudio:{connection}"
        ).job_id

    return webhooks.receive(session, connection, payload, secret, start_pull=start_pull)


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
    page_size: PageSize = DEFAULT_PAGE_SIZE,
) -> JobAccepted:
    check_pushable(session, batch_id)
    request = PushRequest(batch_id=batch_id, page_size=page_size)
    return accept_job(session, background, "sync", request.model_dump(), actor=actor(user))


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
    page_size: PageSize = DEFAULT_PAGE_SIZE,
) -> JobAccepted:
    queue = get_queue(session, ref)
    request = PullRequest(queue_id=queue.id, full=full, page_size=page_size)
    params = request.model_dump(exclude_none=True)
    return accept_job(session, background, "sync", params, actor=actor(user))
