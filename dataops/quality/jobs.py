"""The ``label_quality`` job: one transaction that scores a task's labels, or finds its run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from dataops.quality.models import LabelQualityRun
from dataops.quality.run import run_label_quality
from dataops.quality.schemas import LabelQualityRequest
from dataops.quality.service import run_out

if TYPE_CHECKING:
    from dataops.jobs.context import JobContext


def run_label_quality_job(ctx: JobContext) -> dict[str, Any]:
    """Params are a ``LabelQualityRequest``; a redelivered job answers with the run it made."""
    request = LabelQualityRequest.model_validate(ctx.params)
    with ctx.session() as session:
        run = session.scalar(select(LabelQualityRun).where(LabelQualityRun.job_id == ctx.job_id))
        if run is None:
            run = run_label_quality(session, request, actor=ctx.actor, job_id=ctx.job_id)
        return run_out(session, run).model_dump(mode="json")
