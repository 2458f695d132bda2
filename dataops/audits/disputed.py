"""An audit's disputed items as a reader needs them: file name, image id and the Label Studio
task, not a 64-character hash.

Audits store each disputed item by the image's sha256 (older audits store nothing else), so
the names and task links are looked up when the items are read, one page at a time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.audits.models import Audit
from dataops.catalog.models import Image
from dataops.config import get_settings
from dataops.labeling.models import Queue
from dataops.selection.models import Batch, BatchItem


class DisputedOut(BaseModel):
    """One disputed item of an audit."""

    sha256: str
    image_id: int | None = Field(description="Catalog image id; null if the image is gone.")
    file_name: str | None = Field(description="Last part of the image's original location.")
    labels: dict[str, str] = Field(description="Annotator -> the answer they gave.")
    majority: str | None = Field(
        default=None, description="The winning answer; null on a tie or when there is none."
    )
    tie: bool = Field(default=False, description="The largest groups of answers tied.")
    reason: str | None = None
    ls_task_id: int | None = None
    ls_task_url: str | None = Field(
        default=None, description="The task in Label Studio, where the connection is known."
    )
    image_url: str | None = Field(
        default=None,
        description="A signed, expiring URL of the image (through the batch's queue).",
    )


class DisputedPage(BaseModel):
    audit_id: int
    total: int
    limit: int
    offset: int
    items: list[DisputedOut]


def file_name(uri: str) -> str:
    """The file name of a location: a path, a file:// or s3:// URL, or an http URL."""
    path = urlsplit(uri).path if "://" in uri else uri
    return path.rstrip("/").rsplit("/", 1)[-1] or uri


def labelstudio_url(connection: str) -> str | None:
    """The browser URL of a Label Studio connection, if it is configured."""
    settings = get_settings()
    if connection == "default":
        return settings.labelstudio_url
    named = settings.labelstudio_connections.get(connection)
    return named.url if named is not None else None


def task_url(connection: str, project_id: int | None, task_id: int | None) -> str | None:
    """A link that opens one task in Label Studio's data manager."""
    base = labelstudio_url(connection)
    if base is None or project_id is None or task_id is None:
        return None
    return f"{base.rstrip('/')}/projects/{project_id}/data?task={task_id}"


def _project(session: Session, batch_id: int | None) -> tuple[str, int | None, int | None]:
    """The batch's Label Studio connection and project (the queue's when the batch has none),
    and its queue."""
    batch = session.get(Batch, batch_id) if batch_id is not None else None
    if batch is None:
        return "default", None, None
    queue = session.get(Queue, batch.queue_id) if batch.queue_id is not None else None
    connection = queue.connection if queue is not None else "default"
    project = batch.ls_project_id or (queue.ls_project_id if queue is not None else None)
    return connection, project, batch.queue_id


def enrich(
    session: Session,
    batch_id: int | None,
    entries: Sequence[dict[str, Any]],
    *,
    paths: bool = False,
) -> list[DisputedOut]:
    """Stored disputed entries with their image's id, file name and Label Studio task.

    `paths`: image URLs as paths on this server (pages load them from their own origin,
    whatever host name the browser used) instead of absolute URLs on the public URL."""
    shas = [str(e["item"]) for e in entries]
    images = {
        sha: (image_id, uri)
        for image_id, sha, uri in session.execute(
            select(Image.id, Image.sha256, Image.uri).where(Image.sha256.in_(shas))
        )
    }
    tasks: dict[int, int | None] = {}
    ids = [image_id for image_id, _ in images.values()]
    if batch_id is not None and ids:
        tasks = dict(
            session.execute(
                select(BatchItem.image_id, BatchItem.ls_task_id).where(
                    BatchItem.batch_id == batch_id, BatchItem.image_id.in_(ids)
                )
            ).all()
        )
    from dataops.api.signing import signed_image_url

    connection, project, queue_id = _project(session, batch_id)
    now = int(time.time())
    out = []
    for entry, sha in zip(entries, shas, strict=True):
        image_id, uri = images.get(sha, (None, None))
        task = tasks.get(image_id) if image_id is not None else None
        out.append(
            DisputedOut(
                sha256=sha,
                image_id=image_id,
                file_name=file_name(uri) if uri else entry.get("file_name"),
                labels={str(k): str(v) for k, v in (entry.get("labels") or {}).items()},
                majority=entry.get("majority"),
                tie="majority" in entry and entry["majority"] is None,
                reason=entry.get("reason") or None,
                ls_task_id=task,
                # Today's connection settings, else the link the audit recorded.
                ls_task_url=task_url(connection, project, task) or entry.get("ls_task_url"),
                image_url=(
                    _url(signed_image_url(image_id, queue_id, now=now), paths=paths)
                    if image_id is not None and queue_id is not None
                    else None
                ),
            )
        )
    return out


def _url(url: str, *, paths: bool) -> str:
    if not paths:
        return url
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def disputed_page(
    session: Session,
    audit: Audit,
    *,
    limit: int = 50,
    offset: int = 0,
    paths: bool = False,
) -> DisputedPage:
    """One page of an audit's disputed items, in the order the audit listed them
    (`paths`: image URLs as same-origin paths, for pages)."""
    entries = list(audit.metrics.get("disputed") or [])
    page = entries[offset : offset + limit]
    return DisputedPage(
        audit_id=audit.id,
        total=len(entries),
        limit=limit,
        offset=offset,
        items=enrich(session, audit.batch_id, page, paths=paths),
    )
