"""Job status over HTTP, and `accept_job`: how any route hands long work off and answers 202."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query
from sqlalchemy.orm import Session

from dataops.api.deps import STAFF, SessionDep, require_roles
from dataops.api.errors import error_responses
from dataops.auth.models import User
from dataops.config import get_settings
from dataops.jobs import dispatch, groups, service
from dataops.jobs.models import Job
from dataops.jobs.schemas import (
    JobAccepted,
    JobGroupList,
    JobGroupRequest,
    JobList,
    JobListRequest,
    JobOut,
)

__all__ = ["accept_job", "router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["jobs"])

_JOB_EXAMPLE = {
    "id": "9b1f0c3e5d7a4b2c8e6f1a0d3c5b7e9f",
    "kind": "ingest",
    "status": "succeeded",
    "params": {"paths": ["/data/incoming/site-a"], "source": "site-a", "copy": False},
    "progress_done": 120,
    "progress_total": 120,
    "result": {"files": 120, "new": 118, "skipped": 0, "quarantined": 2},
    "error": None,
    "attempts": 1,
    "created_by": "user:alice",
    "created_at": "2026-11-02T09:30:00Z",
    "started_at": "2026-11-02T09:30:01Z",
    "finished_at": "2026-11-02T09:30:09Z",
}


def _start(job: Job) -> None:
    """Runs after the response, so after the request's transaction committed the job row."""
    try:
        dispatch.start(job)
    except Exception:
        if get_settings().broker_url:
            # The job stays pending; `dataops jobs recover` (or the beat schedule) requeues it.
            log.warning("could not enqueue job %s; it will be recovered", job.id)
        else:
            # The job row already holds the error for whoever polls it.
            log.info("job %s finished with an error; see GET /v1/jobs/%s", job.id, job.id)


def accept_job(
    session: Session,
    background: BackgroundTasks,
    kind: str,
    params: dict[str, Any],
    *,
    actor: str,
) -> JobAccepted:
    """Record a job in the request's transaction and start it once that commits: on a Celery
    worker when a broker is set, otherwise in this process after the response is sent."""
    dispatch.check_broker()  # 503 now rather than a job nobody will run
    job = service.create_job(session, kind, params, actor)
    background.add_task(_start, job)
    return JobAccepted(job_id=job.id, status_url=f"/v1/jobs/{job.id}")


@router.get(
    "/jobs",
    response_model=JobList,
    summary="List jobs",
    description="Recent jobs, newest first, optionally filtered by status and kind.",
    responses={
        **error_responses(401, 403, 422),
        200: {"content": {"application/json": {"example": {"jobs": [_JOB_EXAMPLE]}}}},
    },
)
def list_jobs(
    session: SessionDep,
    _user: Annotated[User, Depends(require_roles(*STAFF))],
    query: Annotated[JobListRequest, Query()],
) -> JobList:
    rows = service.list_jobs(session, query)
    return JobList(jobs=[JobOut.model_validate(j) for j in rows])


_GROUP_EXAMPLE = {
    "kind": "sync",
    "queue_id": 3,
    "queue": "acme-boxes",
    "jobs": 96,
    "running": 1,
    "failed": 0,
    "last_job_id": "9b1f0c3e5d7a4b2c8e6f1a0d3c5b7e9f",
    "last_status": "running",
    "last_error": None,
    "last_created_at": "2026-11-02T09:30:00Z",
    "last_finished_at": "2026-11-02T09:29:41Z",
    "totals": {"created": 500, "imported": 212},
}


@router.get(
    "/jobs/groups",
    response_model=JobGroupList,
    summary="List jobs grouped by kind",
    description=(
        "Jobs grouped by kind, sync jobs per queue, the group with the newest job first: how "
        "many, how many run or failed, the newest one's status and error, when the group last "
        "finished, and the numbers its succeeded jobs reported, summed (`totals`)."
    ),
    responses={
        **error_responses(401, 403, 422),
        200: {"content": {"application/json": {"example": {"groups": [_GROUP_EXAMPLE]}}}},
    },
)
def list_job_groups(
    session: SessionDep,
    _user: Annotated[User, Depends(require_roles(*STAFF))],
    query: Annotated[JobGroupRequest, Query()],
) -> JobGroupList:
    return JobGroupList(groups=groups.job_groups(session, query))


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="Get a job",
    description="A job's parameters, progress, result and error.",
    responses={
        **error_responses(401, 403, 404, 422),
        200: {"content": {"application/json": {"example": _JOB_EXAMPLE}}},
    },
)
def get_job(
    session: SessionDep,
    _user: Annotated[User, Depends(require_roles(*STAFF))],
    job_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The job id.")],
) -> JobOut:
    return JobOut.model_validate(service.get_job(session, job_id))
