"""The audit job: runs one audit in the job's own transaction and finishes the job with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dataops.audits import service
from dataops.audits.run import run_audit
from dataops.audits.schemas import AuditRequest, parse

if TYPE_CHECKING:
    from dataops.jobs.context import JobContext


def run_audit_job(ctx: JobContext) -> dict[str, Any]:
    """Job handler: params are an ``AuditRequest``."""
    from dataops.jobs.runner import pause_point

    request = parse(AuditRequest, ctx.params)
    ctx.progress(0, 1, "audit", force=True)
    with ctx.session() as session:
        audit = run_audit(session, request, actor=ctx.actor)
        pause_point("audit.before_finish")
        # The job finishes with the audit: a retry answers with this audit, never a second one.
        result = ctx.finish(session, service.audit_out(audit).model_dump(mode="json"))
    ctx.progress(1, 1, "audit")
    return result
