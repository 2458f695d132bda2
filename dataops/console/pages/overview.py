"""The console's home page: the catalog at a glance for staff, their queues for vendors.

Staff see ``dataops.overview.service.overview`` (the numbers of ``GET /v1/overview``), with
the jobs at work kept live by console.js polling ``/console/jobs/active.json`` (served
by the jobs pages). A vendor
sees only its own queues' counts (``dataops.labeling.progress``, vendor view): nothing
catalog-wide and nothing of other vendors.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from dataops.api.deps import SessionDep
from dataops.console.deps import ConsoleUser, ConsoleVendorScope
from dataops.console.render import render
from dataops.labeling import progress
from dataops.overview import service

router = APIRouter()


@router.get("/")
def overview(
    request: Request, session: SessionDep, user: ConsoleUser, scope: ConsoleVendorScope
) -> HTMLResponse:
    if scope.vendor_id is not None:
        queues = progress.visible_queue_rows(session, scope_vendor=scope.vendor_id)
        rows = progress.queue_progress(session, queues, vendor_view=True)
        return render(request, "overview/vendor.html", {"queues": rows}, user=user)
    return render(request, "overview/index.html", {"view": service.overview(session)}, user=user)
