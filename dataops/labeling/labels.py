"""Label versions: append-only, superseded by newer edits, audited in place.

An edit is a new row whose ``supersedes_id`` points at the previous version of the same
annotator for the same image, task and batch; the newest row of that chain is the live one.
``source_key`` (source + source id + the source's updated_at) makes every write idempotent:
pulling or importing the same annotation twice stores it once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from dataops.catalog.errors import ImageNotFound
from dataops.catalog.models import Image
from dataops.database.dialect import as_utc_or_none, lock_rows
from dataops.errors import Conflict, DataopsError, NotFound
from dataops.events import service as events
from dataops.labeling import importers
from dataops.labeling.errors import (
    AnnotatorNotFound,
    GuidelineNotFound,
    InvalidLabel,
    LabelNotFound,
)
from dataops.labeling.guideline_versions import guideline_ref
from dataops.labeling.models import (
    ACCEPTED,
    ADJUDICATED,
    DELETED,
    REJECTED,
    RELEASED,
    SUBMITTED,
    Annotator,
    Guideline,
    LabelVersion,
    Queue,
)
from dataops.labeling.payloads import normalise_payload
from dataops.labeling.schemas import LabelVersionOut
from dataops.selection.models import Batch

SOURCE_LABELSTUDIO = "labelstudio"
SOURCE_CSV = "csv"
LABEL_STATUSES = (SUBMITTED, ACCEPTED, REJECTED, ADJUDICATED)
AUDIT_STATUSES = (ACCEPTED, REJECTED, ADJUDICATED, RELEASED)
_SOURCE = re.compile(r"^[a-z][a-z0-9_.-]{0,31}$")
_CHUNK = 500
# Label versions one listing returns unless asked for another number.
LIST_LIMIT = 1000


def chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def labelstudio_source_id(connection: str, annotation_id: int | str) -> str:
    """Label Studio annotation ids are per instance, so the connection is part of the id."""
    return f"{connection}:{annotation_id}"


def _stamp(updated_at: datetime | None) -> str:
    return "-" if updated_at is None else updated_at.strftime("%Y%m%dT%H%M%S.%fZ")


def source_key(source: str, source_id: str, updated_at: datetime | str | None) -> str:
    """The idempotency key: the same annotation at the same edit time is stored once.

    Neither ``source`` nor the compact timestamp contains ':', so the key is unambiguous
    even when ``source_id`` does.
    """
    when = importers.parse_timestamp(updated_at) if isinstance(updated_at, str) else updated_at
    return f"{source}:{source_id}:{_stamp(as_utc_or_none(when))}"


def _head(
    session: Session, image_id: int, annotator_id: int | None, task: str, batch_id: int | None
) -> LabelVersion | None:
    """The live end of the chain for (image, annotator, task, batch): its newest row."""
    return session.scalar(
        select(LabelVersion)
        .where(
            LabelVersion.image_id == image_id,
            LabelVersion.task == task,
            LabelVersion.annotator_id == annotator_id,
            LabelVersion.batch_id == batch_id,
        )
        .order_by(LabelVersion.id.desc())
        .limit(1)
    )


def _lock_image(session: Session, image_id: int) -> Image:
    """Serialise label writes per image on PostgreSQL, so a chain never forks."""
    image = session.scalar(lock_rows(select(Image).where(Image.id == image_id)))
    if image is None:
        raise ImageNotFound(f"no image with id {image_id}")
    return image


def _resolve_guideline(
    session: Session, guideline_id: int | None, batch_id: int | None
) -> Guideline | None:
    batch_guideline: int | None = None
    if batch_id is not None:
        batch = session.get(Batch, batch_id)
        if batch is None:
            raise NotFound(f"no batch {batch_id}")
        if batch.queue_id is not None:
            queue = session.get(Queue, batch.queue_id)
            batch_guideline = queue.guideline_id if queue is not None else None
    if guideline_id is not None and batch_guideline not in (None, guideline_id):
        raise InvalidLabel(
            f"batch {batch_id} is labeled under guideline id {batch_guideline}, not {guideline_id}"
        )
    chosen = guideline_id if guideline_id is not None else batch_guideline
    if chosen is None:
        return None
    guideline = session.get(Guideline, chosen)
    if guideline is None:
        raise GuidelineNotFound(f"no guideline with id {chosen}")
    return guideline


def _check_source(source: str, source_id: str, task: str, status: str) -> None:
    if not _SOURCE.match(source):
        raise DataopsError(f"source {source!r} must be a short lower-case word (csv, labelstudio)")
    if not source_id or len(source_id) > 128:
        raise DataopsError("source_id must be 1 to 128 characters")
    if not task.strip() or len(task) > 128:
        raise DataopsError("task must be 1 to 128 characters")
    if status not in LABEL_STATUSES:
        raise InvalidLabel(f"status must be one of {', '.join(LABEL_STATUSES)}, got {status!r}")


def add_label_version(
    session: Session,
    *,
    image_id: int,
    payload: dict[str, Any],
    source: str,
    source_id: str,
    source_updated_at: datetime | str | None = None,
    annotator_id: int | None = None,
    batch_id: int | None = None,
    guideline_id: int | None = None,
    task: str = "default",
    status: str = SUBMITTED,
    actor: str | None = None,
    lead_time: float | None = None,
) -> tuple[LabelVersion, bool]:
    """Append a label version; ``(version, created)``, idempotent on the source key.

    The new version supersedes the annotator's live version for the same image, task and
    batch. An older edit of an annotation whose newer edit is already stored changes nothing
    (Label Studio had already replaced it) and returns the live version. The payload is
    normalised, and checked against the guideline (given, or the batch's queue's) when known.
    ``lead_time`` is the seconds the annotator spent on it, where the source reports that.
    """
    _check_source(source, source_id, task, status)
    updated = (
        importers.parse_timestamp(source_updated_at)
        if isinstance(source_updated_at, str)
        else as_utc_or_none(source_updated_at)
    )
    key = source_key(source, source_id, updated)
    _lock_image(session, image_id)
    existing = session.scalar(select(LabelVersion).where(LabelVersion.source_key == key))
    if existing is not None:
        return existing, False
    guideline = _resolve_guideline(session, guideline_id, batch_id)
    clean = normalise_payload(
        payload,
        kind=guideline.kind if guideline else None,
        classes=list(guideline.classes) if guideline else None,
    )
    if annotator_id is not None and session.get(Annotator, annotator_id) is None:
        raise AnnotatorNotFound(f"no annotator with id {annotator_id}")
    head = _head(session, image_id, annotator_id, task, batch_id)
    head_time = as_utc_or_none(head.source_updated_at) if head is not None else None
    if (
        head is not None
        and (head.source, head.source_id) == (source, source_id)
        and head_time is not None
        and updated is not None
        and updated < head_time
    ):
        return head, False
    version = LabelVersion(
        image_id=image_id,
        annotator_id=annotator_id,
        batch_id=batch_id,
        guideline_id=guideline.id if guideline else None,
        task=task,
        payload=clean,
        source=source,
        source_id=source_id,
        source_updated_at=updated,
        source_key=key,
        supersedes_id=head.id if head is not None else None,
        status=status,
        lead_time=lead_time,
        created_by=actor,
    )
    session.add(version)
    session.flush()
    events.record(
        session,
        "label.added",
        "label_version",
        version.id,
        actor=actor,
        details={
            "image_id": image_id,
            "task": task,
            "source": source,
            "source_id": source_id,
            "status": status,
            "supersedes_id": version.supersedes_id,
        },
    )
    return version, True


def latest_by_source(session: Session, source: str, source_id: str) -> LabelVersion | None:
    """The newest stored version of one annotation (e.g. a Label Studio annotation id)."""
    return session.scalar(
        select(LabelVersion)
        .where(LabelVersion.source == source, LabelVersion.source_id == source_id)
        .order_by(LabelVersion.id.desc())
        .limit(1)
    )


def mark_deleted(
    session: Session,
    *,
    source: str,
    source_id: str,
    deleted_at: datetime | None = None,
    actor: str | None = None,
) -> tuple[LabelVersion | None, bool]:
    """Record that an annotation was deleted at its source by appending a ``deleted`` version.

    Nothing is erased. When the annotation is unknown, already deleted, or was already
    superseded by another label of the same annotator, nothing is appended.
    """
    version = latest_by_source(session, source, source_id)
    if version is None:
        return None, False
    _lock_image(session, version.image_id)
    head = _head(session, version.image_id, version.annotator_id, version.task, version.batch_id)
    assert head is not None
    if head.status == DELETED or (head.source, head.source_id) != (source, source_id):
        return head, False
    deletion = LabelVersion(
        image_id=head.image_id,
        annotator_id=head.annotator_id,
        batch_id=head.batch_id,
        guideline_id=head.guideline_id,
        task=head.task,
        payload={},
        source=source,
        source_id=source_id,
        source_updated_at=as_utc_or_none(deleted_at),
        source_key=f"{source}:{source_id}:deleted-{head.id}",
        supersedes_id=head.id,
        status=DELETED,
        created_by=actor,
    )
    session.add(deletion)
    session.flush()
    events.record(
        session,
        "label.deleted",
        "label_version",
        deletion.id,
        actor=actor,
        details={"image_id": head.image_id, "supersedes_id": head.id, "source_id": source_id},
    )
    return deletion, True


def set_status(
    session: Session,
    version_id: int,
    status: str,
    *,
    actor: str | None = None,
    reason: str | None = None,
) -> LabelVersion:
    """An audit verdict on a live version: accepted, rejected or adjudicated."""
    if status not in AUDIT_STATUSES:
        raise InvalidLabel(f"status must be one of {', '.join(AUDIT_STATUSES)}, got {status!r}")
    version = session.get(LabelVersion, version_id)
    if version is None:
        raise LabelNotFound(f"no label version {version_id}; see `dataops labels list`")
    _lock_image(session, version.image_id)
    head = _head(session, version.image_id, version.annotator_id, version.task, version.batch_id)
    if head is not None and head.id != version.id:
        raise Conflict(
            f"label version {version_id} was superseded by version {head.id}; audit the live one"
        )
    if version.status == DELETED:
        raise Conflict(f"label version {version_id} records a deletion; there is nothing to audit")
    if version.status == status:
        return version
    previous = version.status
    version.status = status
    session.flush()
    events.record(
        session,
        "label.status",
        "label_version",
        version.id,
        actor=actor,
        details={"from": previous, "to": status, "reason": reason},
    )
    return version


def _live_ids(
    *,
    image_ids: Sequence[int] | None = None,
    task: str | None = None,
    batch_id: int | None = None,
) -> Any:
    stmt = select(func.max(LabelVersion.id)).group_by(
        LabelVersion.image_id, LabelVersion.annotator_id, LabelVersion.task, LabelVersion.batch_id
    )
    if image_ids is not None:
        stmt = stmt.where(LabelVersion.image_id.in_(list(image_ids)))
    if task is not None:
        stmt = stmt.where(LabelVersion.task == task)
    if batch_id is not None:
        stmt = stmt.where(LabelVersion.batch_id == batch_id)
    return stmt


def live_versions(
    session: Session,
    *,
    image_ids: Sequence[int] | None = None,
    task: str | None = None,
    batch_id: int | None = None,
) -> list[LabelVersion]:
    """The current label of each annotator per image, task and batch (deletions left out)."""
    ids = _live_ids(image_ids=image_ids, task=task, batch_id=batch_id)
    return list(
        session.scalars(
            select(LabelVersion)
            .where(LabelVersion.id.in_(ids), LabelVersion.status != DELETED)
            .order_by(LabelVersion.id)
        )
    )


def accepted_labels(task: str, *, image_ids: Sequence[int] | None = None) -> Select[int, int]:
    """The accepted label of each image for ``task``, as SQL: columns ``image_id`` and ``id``.

    The one definition of the label a manifest freezes: among the live accepted or adjudicated
    versions of an image (the newest of each image, annotator and batch chain), an
    adjudicated version wins, then the newest. Plain aggregates, so PostgreSQL hashes a
    million labels instead of sorting them. Use it as a subquery or CTE
    (``accepted_labels(task).cte("chosen")``).
    """
    live = select(func.max(LabelVersion.id).label("id")).where(LabelVersion.task == task)
    if image_ids is not None:
        live = live.where(LabelVersion.image_id.in_(list(image_ids)))
    live_ids = live.group_by(
        LabelVersion.image_id, LabelVersion.annotator_id, LabelVersion.batch_id
    ).cte("accepted_live")
    return (
        select(
            LabelVersion.image_id,
            func.coalesce(
                func.max(LabelVersion.id).filter(LabelVersion.status == ADJUDICATED),
                func.max(LabelVersion.id),
            ).label("id"),
        )
        .join(live_ids, live_ids.c.id == LabelVersion.id)
        .where(LabelVersion.status.in_((ACCEPTED, ADJUDICATED)))
        .group_by(LabelVersion.image_id)
    )


def accepted_label(session: Session, image_id: int, task: str) -> LabelVersion | None:
    """The label a manifest uses for one image (:func:`accepted_labels`)."""
    chosen = accepted_labels(task, image_ids=[image_id]).subquery()
    return session.scalar(select(LabelVersion).join(chosen, chosen.c.id == LabelVersion.id))


def list_labels(
    session: Session,
    *,
    image_id: int | None = None,
    batch_id: int | None = None,
    status: str | None = None,
    task: str | None = None,
    live: bool = False,
    limit: int | None = None,
) -> list[LabelVersion]:
    stmt = select(LabelVersion).order_by(LabelVersion.id)
    if image_id is not None:
        stmt = stmt.where(LabelVersion.image_id == image_id)
    if batch_id is not None:
        stmt = stmt.where(LabelVersion.batch_id == batch_id)
    if status is not None:
        stmt = stmt.where(LabelVersion.status == status)
    if task is not None:
        stmt = stmt.where(LabelVersion.task == task)
    if live:
        live_ids = _live_ids(
            image_ids=[image_id] if image_id is not None else None, task=task, batch_id=batch_id
        )
        stmt = stmt.where(LabelVersion.id.in_(live_ids), LabelVersion.status != DELETED)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def label_outs(session: Session, versions: Sequence[LabelVersion]) -> list[LabelVersionOut]:
    image_ids = {v.image_id for v in versions}
    annotator_ids = {v.annotator_id for v in versions if v.annotator_id is not None}
    guideline_ids = {v.guideline_id for v in versions if v.guideline_id is not None}
    shas: dict[int, str] = {}
    for chunk in chunks(sorted(image_ids)):
        shas.update(
            (image_id, sha)
            for image_id, sha in session.execute(
                select(Image.id, Image.sha256).where(Image.id.in_(chunk))
            )
        )
    names = {
        annotator_id: name
        for annotator_id, name in session.execute(
            select(Annotator.id, Annotator.name).where(Annotator.id.in_(annotator_ids))
        )
    }
    refs = {
        g.id: guideline_ref(g)
        for g in session.scalars(select(Guideline).where(Guideline.id.in_(guideline_ids)))
    }
    return [
        LabelVersionOut(
            id=v.id,
            image_id=v.image_id,
            sha256=shas[v.image_id],
            annotator=names.get(v.annotator_id) if v.annotator_id is not None else None,
            annotator_id=v.annotator_id,
            batch_id=v.batch_id,
            guideline=refs.get(v.guideline_id) if v.guideline_id is not None else None,
            task=v.task,
            payload=v.payload,
            status=v.status,
            source=v.source,
            source_id=v.source_id,
            source_updated_at=v.source_updated_at,
            supersedes_id=v.supersedes_id,
            created_by=v.created_by,
            created_at=v.created_at,
        )
        for v in versions
    ]
