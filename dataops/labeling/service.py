"""The labeling API other domains call: vendors, guideline versions, queues, annotators and
label versions, each implemented in the module named after it.

Every function takes the caller's Session, flushes and never commits, and records an
Event for each change. Inside ``dataops.labeling`` import from the topic modules
(``vendors``, ``guideline_versions``, ``queues``, ``annotators``, ``labels``, ``imports``);
this module names what the rest of dataops relies on, plus the reads that combine them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from dataops.labeling import queues
from dataops.labeling import tasks as task_keys
from dataops.labeling.annotators import get_or_create_annotator
from dataops.labeling.guideline_versions import (
    get_guideline,
    guideline_ref,
    publish_guideline,
    publish_guideline_text,
)
from dataops.labeling.imports import import_labels
from dataops.labeling.labels import (
    SOURCE_LABELSTUDIO,
    accepted_label,
    accepted_labels,
    add_label_version,
    labelstudio_source_id,
    live_versions,
    mark_deleted,
    set_status,
    source_key,
)
from dataops.labeling.models import Queue, Vendor
from dataops.labeling.queues import check_connection, get_queue
from dataops.labeling.schemas import DEFAULT_CONNECTION, QueueOut, QueueTaskList
from dataops.labeling.vendors import create_vendor, get_vendor

# Tasks one listing of a queue returns unless asked for another number.
TASK_LIST_LIMIT = 500

__all__ = [
    "DEFAULT_CONNECTION",
    "SOURCE_LABELSTUDIO",
    "accepted_label",
    "accepted_labels",
    "add_label_version",
    "check_connection",
    "create_queue",
    "create_vendor",
    "get_guideline",
    "get_or_create_annotator",
    "get_queue",
    "get_vendor",
    "guideline_ref",
    "import_labels",
    "labelstudio_source_id",
    "live_versions",
    "mark_deleted",
    "publish_guideline",
    "publish_guideline_text",
    "queue_tasks",
    "queue_view",
    "set_status",
    "source_key",
    "visible_queues",
]


def create_queue(
    session: Session, name: str, *, actor: str | None = None, **settings: Any
) -> tuple[Queue, bool]:
    """:func:`queues.create_queue` with the request's fields as keywords (``vendor``,
    ``guideline``, ``overlap``, ``due="3d"``...); omitted ones take the request's defaults."""
    return queues.create_queue(session, queues.queue_request(name=name, **settings), actor=actor)


def queue_tasks(
    session: Session,
    ref: str | int,
    *,
    vendor_id: int | None = None,
    batch_id: int | None = None,
    status: str | None = None,
    limit: int = TASK_LIST_LIMIT,
    offset: int = 0,
) -> QueueTaskList:
    """A queue's tasks as its reader may see them.

    Staff (``vendor_id`` None) get every item of the queue's batches with a signed image URL;
    a vendor gets only its own queue's pushed tasks as opaque task keys, and another vendor's
    queue is reported like a missing one.
    """
    queue = get_queue(session, ref, vendor_id=vendor_id)
    listing = task_keys.staff_tasks if vendor_id is None else task_keys.vendor_tasks
    tasks = listing(session, queue.id, batch_id=batch_id, status=status, limit=limit, offset=offset)
    return QueueTaskList(queue_id=queue.id, tasks=tasks, limit=limit, offset=offset)


def visible_queues(
    session: Session, *, scope_vendor: int | None = None, vendor: str | None = None
) -> list[QueueOut]:
    """The queues a reader may see: staff filter by any ``vendor``; a vendor's reader
    (``scope_vendor``) sees only its own, and its filter can only narrow them."""
    if scope_vendor is None:
        rows = queues.list_queues(session, vendor=vendor)
    else:
        own = session.get(Vendor, scope_vendor)
        if own is None or (vendor is not None and vendor.strip() not in (str(own.id), own.name)):
            return []
        rows = queues.list_queues(session, vendor=own.id)
    return [_shown(session, queue, scope_vendor) for queue in rows]


def queue_view(session: Session, ref: str | int, *, scope_vendor: int | None = None) -> QueueOut:
    """One queue as its reader may see it; another vendor's queue is reported as missing."""
    return _shown(session, get_queue(session, ref, vendor_id=scope_vendor), scope_vendor)


def _shown(session: Session, queue: Queue, scope_vendor: int | None) -> QueueOut:
    """A vendor never learns the gold or overlap share: both would help it spot gold."""
    out = queues.queue_out(session, queue)
    if scope_vendor is not None:
        out = out.model_copy(update={"overlap": None, "gold": None})
    return out
