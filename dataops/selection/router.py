"""Batches over HTTP: request a selection (202 + job), read a batch with its items."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Path

from dataops.api.deps import STAFF, SessionDep, actor, require_roles
from dataops.api.errors import error_responses
from dataops.auth.errors import PermissionDenied
from dataops.auth.models import User
from dataops.jobs.router import accept_job
from dataops.jobs.schemas import JobAccepted
from dataops.labelstudio.schemas import sync_request
from dataops.selection import assign, cancel, lifecycle, service
from dataops.selection.plan import pin
from dataops.selection.schemas import (
    AssignRequest,
    BatchChange,
    BatchOut,
    CancelRequest,
    SelectRequest,
)

router = APIRouter(prefix="/v1", tags=["batches"])


@router.post(
    "/batches",
    status_code=202,
    response_model=JobAccepted,
    summary="Select a batch",
    description=(
        "Checks the request (model, class, queue, task, size) now and starts a `select` job; "
        "its result is the new draft batch. The task is the queue's guideline name (another "
        "`task` is refused), else the only task there is. Eligible images: ok, not labeled for "
        "the task, not in another open batch, not held out (val/test) and not a duplicate of "
        "such an image; one image per duplicate group. Concurrent requests never get the same "
        "image. A `size` above the eligible count or the configured maximum fails unless "
        '`"allow_partial": true`.'
    ),
    responses=error_responses(400, 401, 403, 404, 413, 422, 503),
)
def create_batch(
    session: SessionDep,
    background: BackgroundTasks,
    user: Annotated[User, Depends(require_roles("scientist", "labeling_ops"))],
    request: SelectRequest,
) -> JobAccepted:
    params = pin(session, request).model_dump(exclude_defaults=True)
    return accept_job(session, background, "select", params, actor=actor(user))


@router.get(
    "/batches/{batch_id}",
    response_model=BatchOut,
    summary="Get a batch",
    description="A batch's request (strategy, params, seed, model version) and its items in pick order.",
    responses=error_responses(401, 403, 404, 422),
)
def get_batch(
    session: SessionDep,
    _user: Annotated[User, Depends(require_roles(*STAFF))],
    batch_id: Annotated[int, Path(ge=1, le=2**31 - 1, description="The batch id.")],
) -> BatchOut:
    return service.get_batch_out(session, batch_id)


BatchId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The batch id.")]
Steerers = Annotated[User, Depends(require_roles("scientist", "labeling_ops"))]
# Taking tasks away from a vendor is labeling ops' call; drafts are anyone's who may select.
_SENT_CANCELLERS = frozenset({"admin", "labeling_ops"})


@router.post(
    "/batches/{batch_id}/cancel",
    response_model=BatchChange,
    summary="Cancel a batch",
    description=(
        "Cancels a draft, or a batch already sent to Label Studio (admins and labeling ops "
        "only): its images are released, tasks nobody labeled are deleted from the queue's "
        "Label Studio project, labels already made are kept (tasks holding annotations stay, "
        "and a pull job is started to store any not pulled yet: `pull_job_id`). Repeating it "
        "is harmless. Accepted or rejected batches are closed already: 409."
    ),
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
def cancel_batch(
    session: SessionDep,
    background: BackgroundTasks,
    user: Steerers,
    batch_id: BatchId,
    request: CancelRequest | None = None,
) -> BatchChange:
    batch = cancel.check_cancellable(session, batch_id)
    if batch.status in lifecycle.SYNCED_STATUSES and user.role not in _SENT_CANCELLERS:
        raise PermissionDenied(
            f"batch {batch.id} is {batch.status}: only labeling ops may cancel a batch a vendor "
            "has received"
        )
    change = cancel.cancel_batch(
        batch_id,
        transaction=lambda: nullcontext(session),
        actor=actor(user),
        reason=request.reason if request is not None else None,
    )
    if change.kept_tasks and batch.queue_id is not None:
        pull = sync_request({"action": "pull", "queue_id": batch.queue_id})
        params = pull.model_dump(exclude_none=True)
        job = accept_job(session, background, "sync", params, actor=actor(user))
        change = change.model_copy(update={"pull_job_id": job.job_id})
    return change


@router.post(
    "/batches/{batch_id}/assign",
    response_model=BatchChange,
    summary="Give a draft batch a queue",
    description=(
        "Points a draft (never pushed) at a vendor queue, so it can be pushed. The queue sets "
        "the batch's task (its guideline's name), overlap and gold; images already labeled "
        "for that task are taken out and released (`dropped`). Repeating it is harmless; a "
        "sent batch is refused (409)."
    ),
    responses=error_responses(401, 403, 404, 409, 422),
)
def assign_batch(
    session: SessionDep,
    user: Steerers,
    batch_id: BatchId,
    request: AssignRequest,
) -> BatchChange:
    return assign.assign_batch(session, batch_id, request.queue, actor=actor(user))
