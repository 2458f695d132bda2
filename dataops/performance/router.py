"""Annotator and vendor performance over HTTP, as JSON or CSV; staff only (it names every
vendor's annotators and their gold accuracy, which vendors must never see)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import Field

from dataops.api.deps import STAFF, SessionDep, require_roles
from dataops.api.errors import error_responses
from dataops.auth.models import User
from dataops.performance import export
from dataops.performance.schemas import PerformanceReport, PerformanceRequest
from dataops.performance.service import performance_report

router = APIRouter(prefix="/v1", tags=["annotators"])

Staff = Annotated[User, Depends(require_roles(*STAFF))]

_ROW = {
    "id": 4,
    "name": "ann-17",
    "vendor": "acme",
    "answers": 420,
    "answers_per_day": 14.0,
    "lead_time_answers": 418,
    "median_lead_time_s": 11.5,
    "turnaround_answers": 420,
    "median_turnaround_h": 20.25,
    "due_answers": 420,
    "late_answers": 21,
    "late_share": 0.05,
    "gold_answers": 25,
    "gold_correct": 24,
    "gold_accuracy": 0.96,
    "gold_ci_low": 0.8046,
    "gold_ci_high": 0.9929,
    "kappa_pairs": 80,
    "kappa": 0.83,
    "audited_answers": 400,
    "accepted_answers": 372,
    "first_pass_acceptance": 0.93,
    "reworked_answers": 12,
    "rework_rate": 0.03,
}
_REPORT = {
    "group": "annotator",
    "since": "2026-11-01T00:00:00Z",
    "until": "2026-12-01T00:00:00Z",
    "days": 30.0,
    "sort": "name",
    "descending": False,
    "rows": [_ROW],
}
_CSV = ",".join(export.COLUMNS) + "\r\n" + ",".join(str(_ROW[c]) for c in export.COLUMNS)
_DESCRIPTION = (
    "Per annotator (`group=annotator`) or vendor over the period [`since`, `until`) (default: "
    "the last 30 days): answers per day, median seconds per answer (Label Studio's "
    "`lead_time`), median hours from push to answer and the share given after the batch's due "
    "date, gold accuracy with a 95 % Wilson interval, Cohen's kappa with the other annotators "
    "on shared items, first-pass acceptance (answers the batch's audit accepted) and rework "
    "rate (answers whose item went to the relabel batch). Staff only; vendors get 403."
)


class PerformanceQuery(PerformanceRequest):
    """The report's request, plus the answer's format."""

    format: Literal["json", "csv"] = Field(
        default="json", description="`csv`: the same rows as a CSV download."
    )


def _csv(report: PerformanceReport) -> Response:
    return Response(
        export.to_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{export.filename(report)}"'},
    )


_RESPONSES: dict[int | str, dict[str, Any]] = {
    **error_responses(400, 401, 403, 422),
    200: {
        "content": {
            "application/json": {"example": _REPORT},
            "text/csv": {"schema": {"type": "string"}, "example": _CSV},
        }
    },
}


@router.get(
    "/annotators/performance",
    response_model=PerformanceReport,
    summary="Annotator or vendor performance",
    description=_DESCRIPTION + " `format=csv` answers the same rows as CSV.",
    responses=_RESPONSES,
)
def get_performance(
    session: SessionDep, _user: Staff, query: Annotated[PerformanceQuery, Query()]
) -> Any:
    request = PerformanceRequest.model_validate(query.model_dump(exclude={"format"}))
    report = performance_report(session, request)
    return _csv(report) if query.format == "csv" else report


@router.get(
    "/annotators/performance.csv",
    response_class=Response,
    summary="Annotator or vendor performance as CSV",
    description=_DESCRIPTION
    + " One header row of field names, then one row per annotator or vendor.",
    responses=_RESPONSES,
)
def get_performance_csv(
    session: SessionDep, _user: Staff, query: Annotated[PerformanceRequest, Query()]
) -> Response:
    return _csv(performance_report(session, query))
