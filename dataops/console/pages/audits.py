"""Audits in the console (staff only): the list with decision and pass rate, one audit's report
with each metric explained and its disputed items by file name, and the stored HTML report
opened in the browser with the console's session instead of a bearer token."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from dataops.api.deps import SessionDep
from dataops.audits import service
from dataops.audits.schemas import MAX_ID
from dataops.audits.view import audit_view
from dataops.auth.models import User
from dataops.console.deps import STAFF, console_roles
from dataops.console.render import render

router = APIRouter()

Staff = Annotated[User, Depends(console_roles(*STAFF))]
AuditId = Annotated[int, Path(ge=1, le=MAX_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]
PAGE = 50
DISPUTED_PAGE = 24
# The stored report is one self-contained file: inline CSS and data: images, never a script.
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; "
    "form-action 'none'; base-uri 'none'"
)


def _page_url(offset: int, decision: str | None) -> str:
    query = {"offset": offset, **({"decision": decision} if decision else {})}
    return "/console/audits?" + urlencode(query)


@router.get("/audits")
def audit_list(
    request: Request,
    session: SessionDep,
    user: Staff,
    offset: Offset = 0,
    decision: Annotated[Literal["accepted", "rejected"] | None, Query()] = None,
) -> HTMLResponse:
    rows = service.list_audits(session, decision=decision, limit=PAGE + 1, offset=offset)
    audits = [service.audit_out(a) for a in rows[:PAGE]]
    return render(
        request,
        "audits/index.html",
        {
            "audits": audits,
            "decision": decision or "",
            "prev_url": _page_url(max(0, offset - PAGE), decision) if offset > 0 else None,
            "next_url": _page_url(offset + PAGE, decision) if len(rows) > PAGE else None,
        },
        user=user,
    )


@router.get("/audits/{audit_id}")
def audit_page(
    request: Request, session: SessionDep, user: Staff, audit_id: AuditId, offset: Offset = 0
) -> HTMLResponse:
    view = audit_view(session, audit_id, disputed_limit=DISPUTED_PAGE, disputed_offset=offset)
    total = view.disputed.total
    base = f"/console/audits/{audit_id}"
    return render(
        request,
        "audits/show.html",
        {
            "view": view,
            "prev_url": f"{base}?offset={max(0, offset - DISPUTED_PAGE)}#disputed"
            if offset > 0
            else None,
            "next_url": f"{base}?offset={offset + DISPUTED_PAGE}#disputed"
            if offset + DISPUTED_PAGE < total
            else None,
        },
        user=user,
    )


@router.get("/audits/{audit_id}/report.html")
def audit_report(session: SessionDep, _user: Staff, audit_id: AuditId) -> Response:
    from dataops.audits.errors import AuditNotFound
    from dataops.storage import get_store

    audit = service.get_audit(session, audit_id)
    if audit.report_html_key is None:
        raise AuditNotFound(f"audit {audit_id} has no HTML report")
    return HTMLResponse(
        get_store().get(audit.report_html_key),
        headers={
            "Content-Security-Policy": REPORT_CSP,
            "Content-Disposition": f'inline; filename="audit-{audit_id}.html"',
        },
    )
