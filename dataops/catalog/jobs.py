"""The ingest job: runs an ``IngestRequest`` and reports what it did over all its attempts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dataops.catalog import service
from dataops.catalog.ingest import ingest
from dataops.catalog.schemas import IngestRequest, IngestResult

if TYPE_CHECKING:
    from dataops.jobs.context import JobContext


def run_ingest_job(ctx: JobContext) -> dict[str, Any]:
    """Job handler; params are an ``IngestRequest``. Each batch of files commits on its own,
    with the job's counters in the same transaction."""
    request = IngestRequest.model_validate(ctx.params)
    result = ingest(
        request.paths,
        source=request.source,
        attributes_csv=request.attributes_csv,
        copy=request.copy_bytes,
        roots=request.roots,
        actor=ctx.actor,
        transaction=ctx.session,
        progress=lambda done, total: ctx.progress(done, total, "ingest"),
        on_batch=lambda session, counts: ctx.count(session, _tally(counts)),
    )
    result = _across_attempts(result, ctx.counters())
    with ctx.session() as session:
        service.record_ingest_event(session, result, actor=ctx.actor, job_id=ctx.job_id)
    return result.model_dump(exclude={"job_id"})


def _tally(counts: service.RecordCounts) -> dict[str, int]:
    return {
        "new": counts.new,
        "quarantined": counts.quarantined,
        "locations_added": counts.locations_added,
    }


def _across_attempts(result: IngestResult, totals: dict[str, int]) -> IngestResult:
    """What the job did over all its attempts: files an earlier, interrupted attempt wrote
    are new to this job, not skipped, though this attempt found them in the catalog."""
    earlier = max(0, totals.get("new", result.new) - result.new)
    return result.model_copy(
        update={
            "new": result.new + earlier,
            "skipped": max(0, result.skipped - earlier),
            "quarantined": totals.get("quarantined", result.quarantined),
            "locations_added": totals.get("locations_added", result.locations_added),
        }
    )
