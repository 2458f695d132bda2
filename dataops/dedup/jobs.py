"""The dedup job: one run in its own transaction, shards sent to workers when a broker is set."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dataops.config import get_settings
from dataops.dedup.run import run_dedup
from dataops.dedup.schemas import DedupRunRequest
from dataops.dedup.shards import SHARD_TASK
from dataops.jobs import dispatch
from dataops.jobs.registry import QUEUES

if TYPE_CHECKING:
    from dataops.jobs.context import JobContext


def send_shards(run_id: str, shards: int) -> None:
    """Queue one shard task per slice on the dedup workers' queue."""
    for k in range(shards):
        dispatch.send(SHARD_TASK, [run_id, k], QUEUES["dedup"])


def run_dedup_job(ctx: JobContext) -> dict[str, Any]:
    """Job handler: params are a :class:`DedupRunRequest`; shards go to workers with a broker."""
    request = DedupRunRequest.model_validate(ctx.params)
    fan_out = send_shards if get_settings().broker_url else None
    with ctx.session() as session:
        summary = run_dedup(
            session,
            request,
            actor=ctx.actor,
            progress=ctx.progress,
            run_id=ctx.job_id,
            fan_out=fan_out,
        )
        # The job finishes with the groups it wrote: a retry answers with this summary
        # rather than a second run's (which would find no new image).
        return ctx.finish(session, summary.model_dump())
