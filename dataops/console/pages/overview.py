"""The console's home page: the catalog at a glance for staff, their queues for vendors.

Staff see ``dataops.overview.service.overview`` (the numbers of ``GET /v1/overview``), with
the jobs at work kept live by console.js polling ``/console/jobs/active.json``. A vendor
sees only its own queues' counts (``dataops.labeling.progress``, vendor view): nothing
catalog-wide and nothing of other vendors.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from dataops.api.deps import SessionDep
from dataops.auth.models import User
from dataops.console.deps import STAFF, ConsoleUser, ConsoleVendorScope, console_roles
from dataops.console.render import render
from dataops.labeling import progress
from dataops.overview import service
from dataops.overview.schemas import ActiveJobs

router = APIRouter()

Staff = Annotated[User, Depends(console_roles(*STAFF))]


@router.get("/")
def overview(
    request: Request, session: SessionDep, user: ConsoleUser, scope: ConsoleVendorScope
) -> HTMLResponse:
    if scope.vendor_id is not None:
        queues = progress.visible_queue_rows(session, scope_vendor=scope.vendor_id)
        rows = progress.queue_progress(session, queues, vendor_view=True)
        return render(request, "overview/vendor.html", {"queues": rows}, user=user)
    return render(request, "overview/index.html", {"view": service.overview(session)}, user=user)


@router.get("/jobs/active.json")
def active_jobs(session: SessionDep, _user: Staff) -> ActiveJobs:
    """What console.js polls for live progress (the session cookie, not a bearer token)."""
    return ActiveJobs(jobs=service.active_jobs(session))
