"""The model registry over HTTP: list and register versions, and start a scoring job (202)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Path, Query, Response

from dataops.api.deps import STAFF, SessionDep, actor, api_settings, require_roles
from dataops.api.errors import error_responses
from dataops.auth.models import User
from dataops.catalog.errors import IngestPathRefused
from dataops.catalog.roots import check_ingest_path
from dataops.jobs.router import accept_job
from dataops.jobs.schemas import JobAccepted
from dataops.scoring import register as registry
from dataops.scoring import service
from dataops.scoring.schemas import (
    MODEL_REF,
    MODEL_VERSION_EXAMPLE,
    ModelList,
    RegisteredModel,
    RegisterModelRequest,
    ScoreParams,
    ScoreRequest,
)
from dataops.scoring.score import pin

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
    "/models",
    status_code=201,
    response_model=RegisteredModel,
    summary="Register a model version",
    description=(
        "Stores a TorchScript file that lies on the server inside the configured ingest roots "
        "(DATAOPS_API__INGEST_ROOTS) as the next version of `name`, after a dry run that checks "
        "its input spec and that it has one output per class. Versions are immutable: the same "
        "bytes under the same name answer 200 with the existing version, new bytes 201 with a "
        "new one."
    ),
    responses={
        **error_responses(400, 401, 403, 409, 413, 422),
        200: {
            "model": RegisteredModel,
            "description": "These bytes already were a version of the name.",
        },
        201: {
            "description": "A new version.",
            "content": {
                "application/json": {
                    "example": {
                        **MODEL_VERSION_EXAMPLE,
                        "predictions": 0,
                        "created": True,
                    }
                }
            },
        },
    },
)
def register_model(
    session: SessionDep,
    response: Response,
    user: Annotated[User, Depends(require_roles("scientist"))],
    request: RegisterModelRequest,
) -> RegisteredModel:
    path = check_ingest_path(request.path, api_settings().ingest_roots)
    if "://" in path:
        raise IngestPathRefused(f"refused {request.path!r}: a model file must be a local path")
    # The dry run may take scoring.probe_timeout seconds: end the unit of work that signing in
    # opened (it may have written the token's last use), so no lock is held meanwhile.
    session.commit()
    mv, created = registry.register_model(
        session,
        path,
        name=request.name,
        classes=request.classes,
        input_spec=request.input_spec,
        make_current=request.current,
        actor=actor(user),
    )
    if not created:
        response.status_code = 200
    [out] = [m for m in service.list_models(session, mv.name) if m.id == mv.id]
    return RegisteredModel(**out.model_dump(), created=created)


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
    params = pin(session, ScoreParams(**body.model_dump(), model=ref)).model_dump()
    return accept_job(session, background, "score", params, actor=actor(user))
