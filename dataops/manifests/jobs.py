"""The ``manifest`` job: create a manifest in one transaction that the job owns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dataops.manifests import service
from dataops.manifests.create import STAGES, create_manifest
from dataops.manifests.schemas import ManifestRequest

if TYPE_CHECKING:
    from dataops.jobs.context import JobContext


def run_manifest_job(ctx: JobContext) -> dict[str, Any]:
    """Job handler: the params are a :class:`ManifestRequest`."""
    request = ManifestRequest.model_validate(ctx.params)
    with ctx.session() as session:
        manifest = create_manifest(session, request, actor=ctx.actor, progress=ctx.progress)
        # The job finishes with the manifest: a retry answers with it instead of failing on
        # the name this job took.
        result = ctx.finish(
            session, service.manifest_out(session, manifest).model_dump(mode="json")
        )
    ctx.progress(STAGES, STAGES, "done", force=True)
    return result
