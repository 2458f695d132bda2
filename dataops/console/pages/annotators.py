"""Annotator and vendor performance in the console (staff only): a period picker, a table
sortable by its column links, and the same rows as a CSV download.

The numbers and their definitions are ``dataops.performance.service``'s (also served as JSON
at ``GET /v1/annotators/performance``).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from dataops.api.deps import SessionDep
from dataops.auth.models import User
from dataops.console.deps import STAFF, console_roles
from dataops.console.render import render
from dataops.performance import export
from dataops.performance.schemas import Group, PerformanceReport, PerformanceRequest
from dataops.performance.service import performance_report, request_from_query

router = APIRouter()

Staff = Annotated[User, Depends(console_roles(*STAFF))]

_PAGES: dict[Group, str] = {"annotator": "/console/annotators", "vendor": "/console/vendors"}
_FORM_FIELDS = ("since", "until", "sort", "descending")
_NUMERIC = (
    "answers",
    "answers_per_day",
    "median_lead_time_s",
    "median_turnaround_h",
    "late_share",
    "gold_accuracy",
    "kappa",
    "first_pass_acceptance",
    "rework_rate",
)


def _asked(request: Request, group: Group) -> tuple[dict[str, str], PerformanceRequest]:
    """The form's values as typed (to fill the form again) and the request they make."""
    typed = {k: request.query_params.get(k, "") for k in _FORM_FIELDS}
    return typed, request_from_query({**typed, "group": group})


def _link(path: str, typed: dict[str, str], **changes: str) -> str:
    query = {k: v for k, v in {**typed, **changes}.items() if v}
    return path + ("?" + urlencode(query) if query else "")


def _sort_links(group: Group, typed: dict[str, str], report: PerformanceReport) -> dict[str, str]:
    """Each sortable column's link: by that column, or the other way round when it is the
    current one (numbers start largest first, names A to Z)."""
    links = {}
    for key in ("name", *_NUMERIC):
        descending = not report.descending if key == report.sort else key != "name"
        links[key] = _link(_PAGES[group], typed, sort=key, descending="true" if descending else "")
    return links


def _page(request: Request, session: SessionDep, user: User, group: Group) -> HTMLResponse:
    typed, asked = _asked(request, group)
    report = performance_report(session, asked)
    return render(
        request,
        "annotators/index.html",
        {
            "report": report,
            "typed": typed,
            "action": _PAGES[group],
            "sort_links": _sort_links(group, typed, report),
            "csv_url": _link(_PAGES[group] + ".csv", typed),
            "other": _link(_PAGES["vendor" if group == "annotator" else "annotator"], typed),
        },
        user=user,
    )


def _csv(request: Request, session: SessionDep, group: Group) -> Response:
    _, asked = _asked(request, group)
    report = performance_report(session, asked)
    return Response(
        export.to_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{export.filename(report)}"'},
    )


@router.get("/annotators")
def annotators(request: Request, session: SessionDep, user: Staff) -> HTMLResponse:
    return _page(request, session, user, "annotator")


@router.get("/vendors")
def vendors(request: Request, session: SessionDep, user: Staff) -> HTMLResponse:
    return _page(request, session, user, "vendor")


@router.get("/annotators.csv")
def annotators_csv(request: Request, session: SessionDep, _user: Staff) -> Response:
    return _csv(request, session, "annotator")


@router.get("/vendors.csv")
def vendors_csv(request: Request, session: SessionDep, _user: Staff) -> Response:
    return _csv(request, session, "vendor")
