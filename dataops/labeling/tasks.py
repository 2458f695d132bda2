"""Task keys: the one name a vendor sees for a pushed item, and what it stands for.

Every task, gold or regular, is named by a random 128-bit token (32 hex characters) recorded
in ``task_keys`` with its batch item, batch, image, gold flag and queue. Label Studio task data,
media URLs and the vendor's task listing carry only that token, so nothing a vendor or
annotator reads names a catalog image, a batch, or whether the item is gold; dataops (the
pull, the Label Studio JSON import, the media route) maps the token back through this table.
Tasks pushed before the table existed keep their old item key as their task key.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.catalog.models import Image
from dataops.db import utcnow
from dataops.labeling.labels import chunks
from dataops.labeling.models import Queue, TaskKey
from dataops.labeling.schemas import QueueTask, VendorTask
from dataops.selection.models import Batch, BatchItem

KEY_BYTES = 16


@dataclass(frozen=True)
class TaskRef:
    """What a task key stands for (staff-side only: never shown to a vendor)."""

    key: str
    batch_item_id: int
    batch_id: int
    image_id: int
    sha256: str
    queue_id: int
    is_gold: bool


def new_key() -> str:
    return secrets.token_hex(KEY_BYTES)


def ensure_keys(session: Session, batch_id: int, queue_id: int) -> dict[int, str]:
    """A key for every item of the batch (created once, before any task is imported)."""
    keys = dict(
        session.execute(
            select(TaskKey.batch_item_id, TaskKey.key).where(TaskKey.batch_id == batch_id)
        ).all()
    )
    items = session.execute(
        select(BatchItem.id, BatchItem.image_id, BatchItem.is_gold).where(
            BatchItem.batch_id == batch_id
        )
    )
    for item_id, image_id, is_gold in items:
        if item_id not in keys:
            key = new_key()
            session.add(
                TaskKey(
                    key=key,
                    batch_item_id=item_id,
                    batch_id=batch_id,
                    image_id=image_id,
                    queue_id=queue_id,
                    is_gold=is_gold,
                )
            )
            keys[item_id] = key
    session.flush()
    return keys


def resolve(session: Session, keys: Iterable[str]) -> dict[str, TaskRef]:
    """Map task keys (``data.dataops_item`` of a Label Studio task) to what they stand for;
    unknown keys are left out."""
    wanted = sorted({str(k) for k in keys if k})
    found: dict[str, TaskRef] = {}
    for chunk in chunks(wanted):
        rows = session.execute(
            select(
                TaskKey.key,
                TaskKey.batch_item_id,
                TaskKey.batch_id,
                TaskKey.image_id,
                Image.sha256,
                TaskKey.queue_id,
                TaskKey.is_gold,
            )
            .join(Image, Image.id == TaskKey.image_id)
            .where(TaskKey.key.in_(chunk))
        )
        for key, item_id, batch_id, image_id, sha, queue_id, gold in rows:
            found[key] = TaskRef(key, item_id, batch_id, image_id, sha, queue_id, bool(gold))
    return found


def images_for_task_keys(session: Session, keys: Iterable[str]) -> dict[str, TaskRef]:
    """For importers of Label Studio exports: the image (and batch) behind each task key."""
    return resolve(session, keys)


def items_for_keys(session: Session, keys: Iterable[str], queue_id: int) -> dict[str, BatchItem]:
    """The batch items behind task keys of one queue (keys of another queue are left out)."""
    wanted = sorted({str(k) for k in keys if k})
    found: dict[str, BatchItem] = {}
    for chunk in chunks(wanted):
        rows = session.execute(
            select(TaskKey.key, BatchItem)
            .join(BatchItem, BatchItem.id == TaskKey.batch_item_id)
            .where(TaskKey.key.in_(chunk), TaskKey.queue_id == queue_id)
        )
        for key, item in rows:
            found[key] = item
    return found


def shown_to_vendor(
    session: Session, vendor_id: int, *, days: float, now: datetime | None = None
) -> set[int]:
    """Images a vendor was shown (as any task, in any of its queues) within the last `days`."""
    since = (now or utcnow()) - timedelta(days=days)
    rows = session.scalars(
        select(BatchItem.image_id)
        .join(Batch, Batch.id == BatchItem.batch_id)
        .join(Queue, Queue.id == Batch.queue_id)
        .where(
            Queue.vendor_id == vendor_id,
            BatchItem.pushed_at.is_not(None),
            BatchItem.pushed_at >= since,
        )
        .distinct()
    )
    return set(rows)


@dataclass(frozen=True)
class MediaLink:
    url: str
    expires_at: datetime


def media_link(key: str, *, now: int | None = None) -> MediaLink:
    """A signed, expiring URL for one task's image that names only the task key."""
    from dataops.api.signing import signed_task_url
    from dataops.config import get_settings

    stamp = now if now is not None else int(time.time())
    expires = datetime.fromtimestamp(stamp + get_settings().signed_url_ttl, UTC)
    return MediaLink(signed_task_url(key, now=stamp), expires)


def media_target(session: Session, key: str) -> tuple[int, int] | None:
    """(image id, queue id) behind a media URL's task key; None for an unknown key."""
    row = session.execute(
        select(TaskKey.image_id, TaskKey.queue_id).where(TaskKey.key == key)
    ).first()
    return (int(row[0]), int(row[1])) if row is not None else None


def staff_tasks(
    session: Session,
    queue_id: int,
    *,
    batch_id: int | None,
    status: str | None,
    limit: int,
    offset: int,
) -> list[QueueTask]:
    """Every item of the queue's batches in batch and pick order, gold and overlap marked."""
    from dataops.api.signing import signed_image_url
    from dataops.config import get_settings

    stmt = (
        select(BatchItem, Batch.status, Image.sha256, TaskKey.key)
        .join(Batch, Batch.id == BatchItem.batch_id)
        .join(Image, Image.id == BatchItem.image_id)
        .outerjoin(TaskKey, TaskKey.batch_item_id == BatchItem.id)
        .where(Batch.queue_id == queue_id)
        .order_by(BatchItem.batch_id, BatchItem.position, BatchItem.id)
        .limit(limit)
        .offset(offset)
    )
    if batch_id is not None:
        stmt = stmt.where(BatchItem.batch_id == batch_id)
    if status is not None:
        stmt = stmt.where(Batch.status == status)
    now = int(time.time())
    expires = datetime.fromtimestamp(now + get_settings().signed_url_ttl, UTC)
    out = []
    for item, batch_status, sha, key in session.execute(stmt):
        url = (
            signed_image_url(item.image_id, queue_id, now=now)
            if key is None
            else media_link(key, now=now).url
        )
        out.append(
            QueueTask(
                item_id=item.id,
                batch_id=item.batch_id,
                status=batch_status,
                image_id=item.image_id,
                sha256=sha,
                position=item.position,
                ls_task_id=item.ls_task_id,
                pushed_at=item.pushed_at,
                key=key,
                is_gold=item.is_gold,
                is_overlap=item.is_overlap,
                media_url=url,
                media_expires_at=expires,
            )
        )
    return out


def vendor_tasks(
    session: Session,
    queue_id: int,
    *,
    batch_id: int | None,
    status: str | None,
    limit: int,
    offset: int,
) -> list[VendorTask]:
    """The pushed tasks as a vendor may see them: key, Label Studio task, media URL, in the
    order they were pushed (a seeded shuffle), nothing that names an image or gold."""
    stmt = (
        select(TaskKey.key, Batch.status, BatchItem.ls_task_id, BatchItem.pushed_at)
        .join(BatchItem, BatchItem.id == TaskKey.batch_item_id)
        .join(Batch, Batch.id == TaskKey.batch_id)
        .where(TaskKey.queue_id == queue_id, BatchItem.ls_task_id.is_not(None))
        .order_by(BatchItem.ls_task_id, TaskKey.key)
        .limit(limit)
        .offset(offset)
    )
    if batch_id is not None:
        stmt = stmt.where(TaskKey.batch_id == batch_id)
    if status is not None:
        stmt = stmt.where(Batch.status == status)
    now = int(time.time())
    out = []
    for key, batch_status, ls_task_id, pushed_at in session.execute(stmt):
        link = media_link(key, now=now)
        out.append(
            VendorTask(
                key=key,
                status=batch_status,
                ls_task_id=ls_task_id,
                pushed_at=pushed_at,
                media_url=link.url,
                media_expires_at=link.expires_at,
            )
        )
    return out
