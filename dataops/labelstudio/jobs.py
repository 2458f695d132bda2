"""The sync job (push a batch, pull a queue) and the periodic poll that submits pulls.

The handler owns the transactions: push and pull commit one page at a time through
``ctx.session``, so a crash loses at most the page in flight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from dataops.labelstudio.pull import pull
from dataops.labelstudio.push import push_batch
from dataops.labelstudio.schemas import PullRequest, PushRequest, sync_request
from dataops.labelstudio.service import pending_pull
from dataops.selection import lifecycle
from dataops.selection.models import Batch

if TYPE_CHECKING:
    from dataops.jobs.context import JobContext


def run_sync_job(ctx: JobContext) -> dict[str, Any]:
    """Job handler; params are a ``PushRequest`` or a ``PullRequest``."""
    request = sync_request(ctx.params)

    def progress(done: int, total: int) -> None:
        ctx.progress(done, total, request.action)

    if isinstance(request, PushRequest):
        return push_batch(request, transaction=ctx.session, actor=ctx.actor, progress=progress)
    return pull(request, transaction=ctx.session, actor=ctx.actor, progress=progress)


def poll_open_queues(*, actor: str = "system:labelstudio-poll") -> list[str]:
    """Submit a pull for every queue with a batch out at the vendor (the periodic safety net)."""
    from dataops.db import session_scope
    from dataops.jobs import dispatch

    with session_scope() as session:
        queue_ids = sorted(
            {
                queue_id
                for queue_id in session.scalars(
                    select(Batch.queue_id).where(Batch.status.in_(lifecycle.SYNCED_STATUSES))
                )
                if queue_id is not None
            }
        )
        waiting = {queue_id for queue_id in queue_ids if pending_pull(session, queue_id)}
    jobs = []
    for queue_id in queue_ids:
        if queue_id not in waiting:
            params = PullRequest(queue_id=queue_id).model_dump(exclude_none=True)
            jobs.append(dispatch.submit("sync", params, actor=actor).id)
    return jobs
