"""A scientist's batch requests as the console shows them: the select job, then its draft.

A request is a ``select`` job; its batch (``batches.job_id``) is a draft until it is pushed,
so the chosen images can be looked at first (``preview``) and then pushed or cancelled.
Thumbnails are the signed media URLs Label Studio gets (``dataops.api.signing``), made
relative so the console serves them from its own origin: a draft without a queue has none.
"""

from __future__ import annotations

import time
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dataops.auth.errors import PermissionDenied
from dataops.catalog.models import Image
from dataops.jobs.models import Job
from dataops.labeling.models import Queue
from dataops.selection import lifecycle
from dataops.selection.errors import BatchNotFound
from dataops.selection.models import Batch, BatchItem
from dataops.selection.schemas import PreviewItem, PreviewPage, RequestRow

SELECT_KIND = "select"
PREVIEW_PAGE = 48
# Taking tasks away from a vendor is labeling ops' call; drafts are anyone's who may select.
SENT_CANCELLERS = frozenset({"admin", "labeling_ops"})


def _rows(session: Session, *where: object, limit: int, offset: int = 0) -> list[RequestRow]:
    stmt = (
        select(Job, Batch.id, Batch.status, Batch.size, Batch.strategy, Queue.name)
        .outerjoin(Batch, Batch.job_id == Job.id)
        .outerjoin(Queue, Queue.id == Batch.queue_id)
        .where(Job.kind == SELECT_KIND, *where)  # type: ignore[arg-type]
        .order_by(Job.created_at.desc(), Job.id)
        .limit(limit)
        .offset(offset)
    )
    out = []
    for job, batch_id, batch_status, size, strategy, queue in session.execute(stmt).all():
        params = job.params or {}
        out.append(
            RequestRow(
                job_id=job.id,
                job_status=job.status,
                progress_done=job.progress_done,
                progress_total=job.progress_total,
                error=job.error,
                strategy=strategy or str(params.get("strategy", "")),
                size=size if size is not None else int(params.get("size", 0)),
                class_name=params.get("class"),
                queue=queue or params.get("queue"),
                requested_by=job.created_by,
                created_at=job.created_at,
                batch_id=batch_id,
                batch_status=batch_status,
            )
        )
    return out


def recent_requests(session: Session, *, limit: int = 20, offset: int = 0) -> list[RequestRow]:
    """Batch requests, newest first, with their job's state and their batch's."""
    return _rows(session, limit=limit, offset=offset)


def get_request(session: Session, job_id: str) -> RequestRow:
    found = _rows(session, Job.id == job_id, limit=1)
    if not found:
        raise BatchNotFound(f"no batch request {job_id!r}")
    return found[0]


def _relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def preview(
    session: Session, batch_id: int, *, limit: int = PREVIEW_PAGE, offset: int = 0
) -> PreviewPage:
    """One page of a batch's chosen images in pick order, with thumbnails when it has a queue."""
    from dataops.api.signing import signed_image_url

    batch = lifecycle.get_batch(session, batch_id)
    total = session.scalar(
        select(func.count()).select_from(BatchItem).where(BatchItem.batch_id == batch.id)
    )
    rows = session.execute(
        select(BatchItem.position, BatchItem.image_id, BatchItem.score, Image.uri)
        .join(Image, Image.id == BatchItem.image_id)
        .where(BatchItem.batch_id == batch.id)
        .order_by(BatchItem.position, BatchItem.id)
        .limit(limit)
        .offset(offset)
    ).all()
    now = int(time.time())
    items = [
        PreviewItem(
            position=position,
            image_id=image_id,
            file_name=PurePosixPath(uri).name or uri,
            score=score,
            thumbnail_url=(
                _relative(signed_image_url(image_id, batch.queue_id, now=now))
                if batch.queue_id is not None
                else None
            ),
        )
        for position, image_id, score, uri in rows
    ]
    return PreviewPage(
        batch_id=batch.id,
        status=batch.status,
        total=int(total or 0),
        limit=limit,
        offset=offset,
        items=items,
    )


def check_may_cancel(session: Session, batch_id: int, role: str) -> Batch:
    """Drafts may be cancelled by whoever may select; a sent batch only by labeling ops."""
    from dataops.selection.cancel import check_cancellable

    batch = check_cancellable(session, batch_id)
    if batch.status in lifecycle.SYNCED_STATUSES and role not in SENT_CANCELLERS:
        raise PermissionDenied(
            f"batch {batch.id} is {batch.status}: only labeling ops may cancel a batch a vendor "
            "has received"
        )
    return batch
