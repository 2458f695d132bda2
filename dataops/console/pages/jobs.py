"""Jobs in the console: grouped by kind (sync jobs per queue), a kind's jobs, one job."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse

from dataops.api.deps import SessionDep
from dataops.auth.models import User
from dataops.console.deps import STAFF, console_roles
from dataops.console.render import render
from dataops.db import utcnow
from dataops.jobs import groups, results, service
from dataops.jobs.registry import HANDLERS
from dataops.jobs.schemas import JobGroupRequest, JobListRequest, JobOut
from dataops.overview import service as overview
from dataops.overview.schemas import ActiveJobs

router = APIRouter()

Staff = Annotated[User, Depends(console_roles(*STAFF))]
Kind = Annotated[str | None, Query(pattern=r"^[a-z_]{0,32}$")]


# Periods the grouped view offers, in days (0: every job); a week by default, so the page
# reads a week of jobs however long the job table has grown.
PERIODS = (1, 7, 30, 0)
# Jobs per page of the one-by-one list.
PAGE = 50


@router.get("/jobs")
def job_groups(
    request: Request,
    session: SessionDep,
    user: Staff,
    kind: Kind = None,
    days: Annotated[int, Query(ge=0, le=3650)] = 7,
) -> HTMLResponse:
    since = utcnow() - timedelta(days=days) if days else None
    found = groups.job_groups(session, JobGroupRequest(kind=kind or None, since=since))
    return render(
        request,
        "jobs/groups.html",
        {
            "groups": found,
            "kind": kind or "",
            "kinds": sorted(HANDLERS),
            "days": days,
            "periods": PERIODS,
        },
        user=user,
    )


@router.get("/jobs/list")
def job_list(
    request: Request,
    session: SessionDep,
    user: Staff,
    kind: Kind = None,
    status: Annotated[str | None, Query(pattern=r"^(|pending|running|succeeded|failed)$")] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    # The filter form sends an empty value for "any"; one job more than a page says
    # whether there is a next page.
    query = JobListRequest.model_validate(
        {"kind": kind or None, "status": status or None, "limit": PAGE + 1, "offset": offset}
    )
    found = [JobOut.model_validate(j) for j in service.list_jobs(session, query)]
    base = "/console/jobs/list?" + urlencode({"kind": kind or "", "status": status or ""})
    return render(
        request,
        "jobs/list.html",
        {
            "jobs": found[:PAGE],
            "kind": kind or "",
            "status": status or "",
            "kinds": sorted(HANDLERS),
            "offset": offset,
            "prev_url": f"{base}&offset={max(0, offset - PAGE)}" if offset > 0 else None,
            "next_url": f"{base}&offset={offset + PAGE}" if len(found) > PAGE else None,
        },
        user=user,
    )


@router.get("/jobs/active.json")
def active_jobs(session: SessionDep, _user: Staff) -> ActiveJobs:
    """What console.js polls for the overview's live progress (the session cookie, not a
    bearer token); declared before ``/jobs/{job_id}`` so that path does not take it."""
    return ActiveJobs(jobs=overview.active_jobs(session))


@router.get("/jobs/{job_id}")
def job_page(
    request: Request,
    session: SessionDep,
    user: Staff,
    job_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")],
) -> HTMLResponse:
    job = JobOut.model_validate(service.get_job(session, job_id))
    result = results.result_view(job.kind, job.result)
    return render(request, "jobs/show.html", {"job": job, "result": result}, user=user)


@router.get("/jobs/{job_id}/status.json")
def job_status(
    session: SessionDep, _user: Staff, job_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
) -> dict[str, list[JobOut]]:
    """What console.js polls while a job page shows a job at work."""
    return {"jobs": [JobOut.model_validate(service.get_job(session, job_id))]}
