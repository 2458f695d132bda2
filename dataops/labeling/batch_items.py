"""A batch's items, one page at a time, as its reader may see them.

Staff get each item with a signed image URL, file name, the selection score, the batch
model's top class and score for the image, its live answers (annotator, value, audit status)
and its gold and overlap flags. A vendor gets only the pushed tasks of its own batches, in
push order, as task key, Label Studio task and media URL: a score, a flag or even a count of
answers per item would help it tell gold and overlap items from the rest.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dataops.catalog.models import Image
from dataops.labeling.models import DELETED, Annotator, LabelVersion, TaskKey
from dataops.labeling.progress import batch_rows, visible_batch
from dataops.labeling.progress_schemas import (
    ITEM_PAGE,
    BatchItemRow,
    BatchItems,
    LiveLabel,
    describe_payload,
)
from dataops.labeling.tasks import media_link
from dataops.scoring.models import Prediction
from dataops.selection.models import Batch, BatchItem


def batch_items(
    session: Session,
    batch_id: int,
    *,
    scope_vendor: int | None,
    limit: int = ITEM_PAGE,
    offset: int = 0,
) -> BatchItems:
    """One page of a batch's items with the batch's counts; another vendor's batch (or a
    draft, for a vendor) is reported like a missing one."""
    batch = visible_batch(session, batch_id, scope_vendor=scope_vendor)
    vendor_view = scope_vendor is not None
    row = batch_rows(session, [batch], vendor_view=vendor_view)[0]
    if vendor_view:
        items, total = _vendor_items(session, batch, limit, offset)
    else:
        items, total = _staff_items(session, batch, limit, offset)
    return BatchItems(batch=row, items=items, total=total, limit=limit, offset=offset)


def _vendor_items(
    session: Session, batch: Batch, limit: int, offset: int
) -> tuple[list[BatchItemRow], int]:
    pushed = (TaskKey.batch_id == batch.id, BatchItem.ls_task_id.is_not(None))
    total = session.scalar(
        select(func.count())
        .select_from(TaskKey)
        .join(BatchItem, BatchItem.id == TaskKey.batch_item_id)
        .where(*pushed)
    )
    rows = session.execute(
        select(TaskKey.key, BatchItem.ls_task_id)
        .join(BatchItem, BatchItem.id == TaskKey.batch_item_id)
        .where(*pushed)
        .order_by(BatchItem.ls_task_id, TaskKey.key)
        .limit(limit)
        .offset(offset)
    )
    now = int(time.time())
    items = [
        BatchItemRow(key=key, ls_task_id=task_id, media_url=_path(media_link(key, now=now).url))
        for key, task_id in rows
    ]
    return items, total or 0


def _staff_items(
    session: Session, batch: Batch, limit: int, offset: int
) -> tuple[list[BatchItemRow], int]:
    from dataops.api.signing import signed_image_url

    total = session.scalar(
        select(func.count()).select_from(BatchItem).where(BatchItem.batch_id == batch.id)
    )
    stmt = (
        select(
            BatchItem,
            Image.uri,
            TaskKey.key,
            Prediction.predicted_class,
            Prediction.predicted_score,
        )
        .join(Image, Image.id == BatchItem.image_id)
        .outerjoin(TaskKey, TaskKey.batch_item_id == BatchItem.id)
        .outerjoin(
            Prediction,
            (Prediction.image_id == BatchItem.image_id)
            & (Prediction.model_version_id == batch.model_version_id),
        )
        .where(BatchItem.batch_id == batch.id)
        .order_by(BatchItem.position, BatchItem.id)
        .limit(limit)
        .offset(offset)
    )
    rows = list(session.execute(stmt))
    labels = _live_labels(session, batch.id, [item.image_id for item, *_ in rows])
    now = int(time.time())
    items = []
    for item, uri, key, predicted, predicted_score in rows:
        if key is not None:
            url: str | None = _path(media_link(key, now=now).url)
        elif batch.queue_id is not None:
            url = _path(signed_image_url(item.image_id, batch.queue_id, now=now))
        else:
            url = None
        items.append(
            BatchItemRow(
                key=key,
                ls_task_id=item.ls_task_id,
                media_url=url,
                position=item.position,
                image_id=item.image_id,
                file_name=PurePosixPath(uri).name or uri,
                score=item.score,
                predicted_class=predicted,
                predicted_score=predicted_score,
                is_gold=item.is_gold,
                is_overlap=item.is_overlap,
                labels=labels.get(item.image_id, []),
            )
        )
    return items, total or 0


def _live_labels(
    session: Session, batch_id: int, image_ids: list[int]
) -> dict[int, list[LiveLabel]]:
    """Each annotator's newest answer in the batch on these images, deletions left out."""
    if not image_ids:
        return {}
    live_ids = (
        select(func.max(LabelVersion.id))
        .where(LabelVersion.batch_id == batch_id, LabelVersion.image_id.in_(image_ids))
        .group_by(LabelVersion.image_id, LabelVersion.annotator_id, LabelVersion.task)
    )
    rows = session.execute(
        select(LabelVersion.image_id, Annotator.name, LabelVersion.payload, LabelVersion.status)
        .outerjoin(Annotator, Annotator.id == LabelVersion.annotator_id)
        .where(LabelVersion.id.in_(live_ids), LabelVersion.status != DELETED)
        .order_by(LabelVersion.image_id, LabelVersion.id)
    )
    found: dict[int, list[LiveLabel]] = defaultdict(list)
    for image_id, annotator, payload, status in rows:
        found[image_id].append(
            LiveLabel(annotator=annotator, value=describe_payload(payload), status=status)
        )
    return found


def _path(url: str) -> str:
    """A signed URL as a path on this server, so pages load it from their own origin."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"
