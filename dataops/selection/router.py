"""Batches over HTTP: request a selection (202 + job), read a batch with its items."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Path

from dataops.api.deps import STAFF, SessionDep, actor, require_roles
from dataops.api.errors import error_responses
from dataops.auth.models import User
from dataops.jobs.router import JobAccepted, accept_job
from dataops.selection import service
from dataops.selection.schemas import BatchOut, SelectRequest

router = APIRouter(prefix="/v1", tags=["batches"])


@router.post(
    "/batches",
    status_code=202,
    response_model=JobAccepted,
    summary="Select a batch",
    description=(
        "Checks the request (model, class, queue) now and starts a `select` job; its result is "
        "the new draft batch. Eligible images: ok, not labeled for the task, not in another "
        "open batch, not held out (val/test) and not a duplicate of such an image; one image "
        "per duplicate group. Concurrent requests never get the same image."
    ),
    responses=error_responses(400, 401, 403, 404, 413, 422, 503),
)
def create_batch(
    session: SessionDep,
    background: BackgroundTasks,
    user: Annotated[User, Depends(require_roles("scientist", "labeling_ops"))],
    request: SelectRequest,
) -> JobAccepted:
    params = request.model_dump()
    plan = service.plan_selection(session, **params)
    if plan.model is not None:
        params["model"] = f"{plan.model.name}:{plan.model.version}"
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
