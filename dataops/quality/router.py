"""Label quality over HTTP (staff only): start a run (202 + job), read a run's suspect labels."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query

from dataops.api.deps import STAFF, SessionDep, actor, require_roles
from dataops.api.errors import error_responses
from dataops.auth.models import User
from dataops.jobs.router import accept_job
from dataops.jobs.schemas import JobAccepted
from dataops.quality import service
from dataops.quality.errors import InvalidProbabilities
from dataops.quality.run import check_request
from dataops.quality.schemas import IssuesOut, IssuesRequest, LabelQualityRequest

router = APIRouter(prefix="/v1", tags=["label quality"])
Staff = Annotated[User, Depends(require_roles(*STAFF))]


@router.post(
    "/label-quality",
    status_code=202,
    response_model=JobAccepted,
    summary="Find label issues",
    description=(
        "Starts a `label_quality` job: out-of-sample class probabilities from a logistic-"
        "regression head on the model's embeddings (k folds, each label scored by a head that "
        "never saw it), then cleanlab's confident learning. Every live accepted or submitted "
        "class label of the task gets a quality score, an issue flag and a suggested class. "
        "The model's own stored predictions are refused (`source: predictions`); imported "
        "probabilities are a CLI-only file."
    ),
    responses=error_responses(400, 401, 403, 404, 409, 422, 503),
)
def start_label_quality(
    session: SessionDep,
    background: BackgroundTasks,
    user: Staff,
    request: LabelQualityRequest,
) -> JobAccepted:
    check_request(request)
    if request.probabilities is not None:
        raise InvalidProbabilities(
            "{probabilities} names a file on the machine running the job; import them with "
            "`dataops labels issues --source imported`",
            fields=("probabilities",),
        )
    params = request.model_dump(exclude_defaults=True)
    return accept_job(session, background, "label_quality", params, actor=actor(user))


@router.get(
    "/label-issues",
    response_model=IssuesOut,
    summary="Suspect labels",
    description=(
        "The newest label-quality run of the task (and model), or the run named by `run`, with "
        "its per-class estimated label-error rate and its labels, lowest quality first "
        "(flagged ones only unless `issues_only=false`). Vendors never see it."
    ),
    responses=error_responses(401, 403, 404, 422),
)
def label_issues(
    session: SessionDep,
    _user: Staff,
    task: Annotated[str | None, Query(max_length=128)] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    run: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    issues_only: bool = True,
    limit: Annotated[int | None, Query(ge=0, le=100_000)] = None,
) -> IssuesOut:
    given = {"task": task, "model": model, "run": run, "issues_only": issues_only, "limit": limit}
    request = IssuesRequest.model_validate({k: v for k, v in given.items() if v is not None})
    return service.list_issues(session, request)
