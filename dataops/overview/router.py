"""The overview over HTTP: the numbers of the console's first page, for API users too."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from dataops.api.deps import STAFF, SessionDep, require_roles
from dataops.api.errors import error_responses
from dataops.auth.models import User
from dataops.overview import service
from dataops.overview.schemas import ActiveJobs, Overview

router = APIRouter(prefix="/v1", tags=["overview"])

Staff = Annotated[User, Depends(require_roles(*STAFF))]


@router.get(
    "/overview",
    response_model=Overview,
    summary="The catalog at a glance",
    description=(
        "Catalog counts (images, quarantined, duplicate groups, labeled images per task), the "
        "pending and running jobs with their progress, and the latest events. Staff only: "
        "vendors see their queues' numbers under `/v1/queues`."
    ),
    responses=error_responses(401, 403),
)
def get_overview(session: SessionDep, _user: Staff) -> Overview:
    return service.overview(session)


@router.get(
    "/overview/jobs",
    response_model=ActiveJobs,
    summary="Jobs at work",
    description="Pending and running jobs, newest first, with their progress (polled by the console).",
    responses=error_responses(401, 403),
)
def get_active_jobs(session: SessionDep, _user: Staff) -> ActiveJobs:
    return ActiveJobs(jobs=service.active_jobs(session))
