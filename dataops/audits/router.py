"""Audits over HTTP: list them, read one with its metrics and HTML report, start a new one.

An audit names annotators and vendors across every queue, so vendors are refused.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query
from fastapi.responses import HTMLResponse, Response

from dataops.api.deps import SessionDep, actor, require_roles
from dataops.api.errors import error_responses
from dataops.audits import service
from dataops.audits.disputed import DisputedPage, disputed_page
from dataops.audits.errors import AuditNotFound
from dataops.audits.schemas import MAX_ID, AuditDetail, AuditOut, AuditRequest
from dataops.auth.models import User
from dataops.jobs.router import accept_job
from dataops.jobs.schemas import JobAccepted

router = APIRouter(prefix="/v1", tags=["audits"])

AuditId = Annotated[int, Path(ge=1, le=MAX_ID, description="The audit id.")]
Readers = Annotated[User, Depends(require_roles("labeling_ops", "auditor", "scientist"))]
Runners = Annotated[User, Depends(require_roles("labeling_ops"))]

_AUDIT = {
    "id": 3,
    "batch_id": 5,
    "decision": "accepted",
    "gate": 0.95,
    "pass_rate": 0.97,
    "n_items": 100,
    "n_passed": 97,
    "n_disputed": 3,
    "relabel_batch_id": 6,
    "report_json_key": "audits/3/report.json",
    "report_html_key": "audits/3/report.html",
    "created_by": "user:ops",
    "created_at": "2026-11-02T09:31:00Z",
}


@router.get(
    "/audits",
    response_model=list[AuditOut],
    summary="List audits",
    description=(
        "Audits newest first, a page at a time, optionally only those of one batch or with "
        "one decision."
    ),
    responses={
        **error_responses(401, 403, 422),
        200: {"content": {"application/json": {"example": [_AUDIT]}}},
    },
)
def list_audits(
    session: SessionDep,
    _user: Readers,
    batch: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only audits of this batch.")
    ] = None,
    decision: Annotated[
        Literal["accepted", "rejected"] | None, Query(description="Only audits with this decision.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID, description="Skip this many first.")] = 0,
) -> list[AuditOut]:
    audits = service.list_audits(
        session, batch_id=batch, decision=decision, limit=limit, offset=offset
    )
    return [service.audit_out(a) for a in audits]


@router.get(
    "/audits/{audit_id}",
    response_model=AuditDetail,
    summary="Get an audit",
    description=(
        "One audit's gate decision with its metrics: agreement on overlap items, gold "
        "accuracy, and the per annotator, per vendor and per class tables."
    ),
    responses={
        **error_responses(401, 403, 404, 422),
        200: {
            "content": {
                "application/json": {"example": {**_AUDIT, "metrics": {"gate": {"n_items": 100}}}}
            }
        },
    },
)
def get_audit(session: SessionDep, _user: Readers, audit_id: AuditId) -> AuditDetail:
    audit = service.get_audit(session, audit_id)
    return AuditDetail(**service.audit_out(audit).model_dump(), metrics=audit.metrics)


@router.get(
    "/audits/{audit_id}/disputed",
    response_model=DisputedPage,
    summary="List an audit's disputed items",
    description=(
        "The items the audit found disputed (ties, gold misses), a page at a time, each with "
        "its image id, file name, the answers given and a link to its Label Studio task where "
        "the connection is configured."
    ),
    responses={
        **error_responses(401, 403, 404, 422),
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "audit_id": 3,
                        "total": 1,
                        "limit": 50,
                        "offset": 0,
                        "items": [
                            {
                                "sha256": "9f2c6a1e" * 8,
                                "image_id": 42,
                                "file_name": "IMG_0042.jpg",
                                "labels": {"ann-1": "cat", "ann-2": "dog"},
                                "majority": None,
                                "tie": True,
                                "reason": "tie",
                                "ls_task_id": 1017,
                                "ls_task_url": "https://labelstudio.internal/projects/12/data?task=1017",
                            }
                        ],
                    }
                }
            }
        },
    },
)
def list_disputed(
    session: SessionDep,
    _user: Readers,
    audit_id: AuditId,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID, description="Skip this many first.")] = 0,
) -> DisputedPage:
    audit = service.get_audit(session, audit_id)
    return disputed_page(session, audit, limit=limit, offset=offset)


@router.get(
    "/audits/{audit_id}/report.html",
    response_class=Response,
    summary="Get an audit's HTML report",
    description=(
        "The self-contained HTML report written when the audit ran: metrics, tables and "
        "thumbnails of disputed items."
    ),
    responses={
        **error_responses(401, 403, 404, 422),
        200: {
            "content": {
                "text/html": {
                    "schema": {"type": "string"},
                    "example": "<!doctype html><html><head><title>Audit 3</title></head>...",
                }
            },
            "description": "The report.",
        },
    },
)
def get_report(session: SessionDep, _user: Readers, audit_id: AuditId) -> HTMLResponse:
    from dataops.storage import get_store

    audit = service.get_audit(session, audit_id)
    if audit.report_html_key is None:
        raise AuditNotFound(f"audit {audit_id} has no HTML report")
    return HTMLResponse(get_store().get(audit.report_html_key))


@router.post(
    "/audits",
    status_code=202,
    response_model=JobAccepted,
    summary="Audit a batch",
    description=(
        "Checks that the batch exists and is still open, then starts an `audit` job: agreement "
        "on overlap items and gold accuracy, then the batch is accepted or rejected against "
        "the gate. Disputed items become a new relabel batch; the job's result is the audit."
    ),
    responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def create_audit(
    session: SessionDep,
    background: BackgroundTasks,
    user: Runners,
    request: AuditRequest,
) -> JobAccepted:
    service.check_auditable(session, request.batch_id)
    params = request.model_dump(mode="json")
    return accept_job(session, background, "audit", params, actor=actor(user))
