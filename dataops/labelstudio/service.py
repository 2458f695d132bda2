"""What push, pull, webhooks and the sync job share: the connection to a queue's Label Studio,
the task data field that carries our key, and the reads over skipped annotations.

Push and pull are long and must survive a crash or an outage half-way, so they run page by
page and the caller commits each page (``transaction`` is a factory of committing sessions,
e.g. ``JobContext.session``); every function that takes a ``Session`` only flushes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.config import get_settings
from dataops.database.dialect import as_utc
from dataops.errors import DataopsError
from dataops.labeling import service as labeling
from dataops.labeling.models import Queue
from dataops.labelstudio.models import SkippedAnnotation

if TYPE_CHECKING:
    from dataops.labelstudio.client import LabelStudioClient

Progress = Callable[[int, int], None]

KEY_FIELD = "dataops_item"
SOURCE = labeling.SOURCE_LABELSTUDIO


def client_for(connection: str) -> LabelStudioClient:
    """A client for a queue's Label Studio instance, proven to answer before any work starts."""
    from dataops.labelstudio.client import LabelStudioClient

    settings = get_settings()
    labeling.check_connection(connection)
    if connection == labeling.DEFAULT_CONNECTION:
        url, token = settings.labelstudio_url, settings.labelstudio_token
        hint = "set DATAOPS_LABELSTUDIO_URL and DATAOPS_LABELSTUDIO_TOKEN"
    else:
        named = settings.labelstudio_connections[connection]
        url, token = named.url, named.token
        hint = f"set DATAOPS_LABELSTUDIO_CONNECTIONS__{connection.upper()}__URL and __TOKEN"
    if not url or token is None:
        raise DataopsError(f"Label Studio connection {connection!r} is not configured: {hint}")
    return LabelStudioClient.connect(url, token.get_secret_value())


def chunks(values: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(values)
    while chunk := list(islice(iterator, size)):
        yield chunk


def rank(*parts: object) -> str:
    """A stable pseudo-random order: the same seed and keys always give the same choice."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def share(fraction: float, total: int) -> int:
    """``fraction`` of ``total``, rounded, at least one when the fraction is not zero."""
    if fraction <= 0 or total <= 0:
        return 0
    return min(total, max(1, math.floor(fraction * total + 0.5)))


def queue_for_project(session: Session, connection: str, project_id: int) -> int | None:
    return session.scalar(
        select(Queue.id).where(Queue.connection == connection, Queue.ls_project_id == project_id)
    )


def pending_pull(session: Session, queue_id: int) -> str | None:
    """A pull of this queue that has not started yet will see any change made up to now."""
    from dataops.jobs.models import PENDING, Job

    for job in session.scalars(select(Job).where(Job.kind == "sync", Job.status == PENDING)):
        params = job.params or {}
        if params.get("action") == "pull" and params.get("queue_id") == queue_id:
            return job.id
    return None


def recorded_skips(session: Session, source_ids: Iterable[str]) -> set[tuple[str, datetime]]:
    """(source id, updated_at) of the skipped annotation versions already recorded."""
    found: set[tuple[str, datetime]] = set()
    for chunk in chunks(sorted(set(source_ids)), 500):
        rows = session.execute(
            select(SkippedAnnotation.source_id, SkippedAnnotation.source_updated_at).where(
                SkippedAnnotation.source == SOURCE, SkippedAnnotation.source_id.in_(chunk)
            )
        )
        found.update((source_id, as_utc(stamp)) for source_id, stamp in rows)
    return found


def skipped_source_ids(session: Session, batch_id: int) -> set[str]:
    """Source ids of the annotations of a batch that were skipped at least once."""
    return set(
        session.scalars(
            select(SkippedAnnotation.source_id).where(SkippedAnnotation.batch_id == batch_id)
        )
    )
