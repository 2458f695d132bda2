"""The ``select`` job: one transaction that selects a batch, or finds the one it made."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dataops.selection import run
from dataops.selection.models import Batch
from dataops.selection.schemas import SelectRequest, select_request
from dataops.selection.service import batch_out

if TYPE_CHECKING:
    from dataops.jobs.context import JobContext


def run_select_job(ctx: JobContext) -> dict[str, Any]:
    """Params are a ``SelectRequest``; a redelivered job reuses its batch.

    `batches.job_id` is unique: of two attempts racing, the second one's insert waits for the
    first to commit and then fails, and that attempt answers with the first one's batch.
    """
    from dataops.jobs.runner import pause_point

    request = select_request(
        {k: v for k, v in ctx.params.items() if k in SelectRequest.model_fields or k == "class"}
    )
    try:
        with ctx.session() as session:
            existing = session.scalar(select(Batch).where(Batch.job_id == ctx.job_id))
            pause_point("select.looked")
            batch = existing or run.select_batch(
                session, request, actor=ctx.actor, job_id=ctx.job_id
            )
            pause_point("select.before_commit")
            out = batch_out(session, batch)
    except IntegrityError:
        with ctx.session() as session:
            made = session.scalar(select(Batch).where(Batch.job_id == ctx.job_id))
            if made is None:
                raise
            out = batch_out(session, made)
    return out.model_dump(mode="json")
