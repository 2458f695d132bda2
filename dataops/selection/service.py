"""Reading batches: a batch with its items, in pick order.

Selecting one is ``run.select_batch`` (checked first by ``plan.plan_selection``); the job
that does it is ``jobs.run_select_job``; status changes are in ``lifecycle``, ``assign`` and
``cancel``.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.catalog.models import Image
from dataops.labeling.models import Queue
from dataops.scoring.models import ModelVersion
from dataops.selection.models import Batch, BatchItem
from dataops.selection.plan import model_ref
from dataops.selection.schemas import BatchItemOut, BatchOut


def batch_out(session: Session, batch: Batch) -> BatchOut:
    """A batch with its items in pick order."""
    mv = session.get(ModelVersion, batch.model_version_id) if batch.model_version_id else None
    queue = session.get(Queue, batch.queue_id) if batch.queue_id else None
    items = session.execute(
        select(BatchItem.image_id, Image.sha256, Image.uri, BatchItem.position, BatchItem.score)
        .join(Image, Image.id == BatchItem.image_id)
        .where(BatchItem.batch_id == batch.id)
        .order_by(BatchItem.position, BatchItem.id)
    )
    return BatchOut(
        id=batch.id,
        status=batch.status,
        purpose=batch.purpose,
        strategy=batch.strategy,
        params=dict(batch.params),
        seed=batch.seed,
        model=model_ref(mv) if mv is not None else None,
        queue=queue.name if queue is not None else None,
        size=batch.size,
        overlap=batch.overlap,
        gold=batch.gold,
        requested_by=batch.requested_by,
        created_at=batch.created_at,
        items=[
            BatchItemOut(image_id=i, sha256=sha, uri=uri, position=pos, score=score)
            for i, sha, uri, pos, score in items
        ],
    )


def get_batch_out(session: Session, batch_id: int) -> BatchOut:
    from dataops.selection.lifecycle import get_batch

    return batch_out(session, get_batch(session, batch_id))
