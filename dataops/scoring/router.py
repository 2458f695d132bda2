"""The model registry over HTTP: list versions, and start a scoring job (202)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Path, Query

from dataops.api.deps import STAFF, SessionDep, actor, require_roles
from dataops.api.errors import error_responses
from dataops.auth.models import User
from dataops.jobs.router import JobAccepted, accept_job
from dataops.scoring import service
from dataops.scoring.schemas import MODEL_REF, ModelList, ScoreRequest

router = APIRouter(prefix="/v1", tags=["models"])

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


@router.get(
    "/models",
    response_model=ModelList,
    summary="List model versions",
    description="Every registered version (by name, newest first) with how many images it scored.",
    responses=error_responses(401, 403, 422),
)
def list_models(
    session: SessionDep,
    _user: Annotated[User, Depends(require_roles(*STAFF))],
    name: Annotated[str | None, Query(pattern=_NAME, description="Only this model.")] = None,
) -> ModelList:
    return ModelList(models=service.list_models(session, name))


@router.post(
    "/models/{ref}/score",
    status_code=202,
    response_model=JobAccepted,
    summary="Score the catalog with a model version",
    description=(
        "Starts a `score` job: every ok image the version has not scored yet (all of them with "
        "`rescore`). `ref` is `name` (its current version) or `name:version`."
    ),
    responses=error_responses(400, 401, 403, 404, 413, 422, 503),
)
def score(
    session: SessionDep,
    background: BackgroundTasks,
    user: Annotated[User, Depends(require_roles("scientist"))],
    ref: Annotated[str, Path(pattern=MODEL_REF, description="`name` or `name:version`.")],
    request: Annotated[ScoreRequest | None, Body()] = None,
) -> JobAccepted:
    body = request or ScoreRequest()
    mv = service.resolve_model(session, ref)
    params = {"model": service.ref_of(mv), **body.model_dump()}
    return accept_job(session, background, "score", params, actor=actor(user))
