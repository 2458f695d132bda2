"""Label Studio webhooks: who may send them, and what each one changes.

Label Studio signs nothing, so each project's webhook sends a secret header
(``X-Dataops-Webhook-Secret``, derived from the signing key and the connection name) that is
compared in constant time. Annotation changes only start a pull of the queue (the pull reads
Label Studio itself, so a forged payload could at worst cause an extra pull); deletions can
only be seen here, so they are recorded as ``deleted`` label versions, never erased.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.config import get_settings
from dataops.db import utcnow
from dataops.errors import DataopsError, Forbidden, NotFound
from dataops.labeling import service as labeling
from dataops.labeling.models import LabelVersion, Queue
from dataops.labelstudio.schemas import PullRequest, WebhookResult
from dataops.labelstudio.service import SOURCE, pending_pull, queue_for_project
from dataops.selection.models import Batch

WEBHOOK_HEADER = "X-Dataops-Webhook-Secret"
DELETED_ACTION = "ANNOTATIONS_DELETED"
PULL_ACTIONS = frozenset({"ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED"})

StartPull = Callable[[PullRequest], str]


def webhook_secret(connection: str) -> str:
    """The header value Label Studio sends us back; derived, so nothing extra is configured."""
    message = f"dataops:labelstudio-webhook:v1:{connection}".encode()
    return hmac.new(get_settings().signing_key(), message, hashlib.sha256).hexdigest()


def check_webhook_secret(connection: str, presented: str | None) -> None:
    """Label Studio signs nothing, so the secret header is the only proof of the sender."""
    expected = webhook_secret(connection).encode()
    if not hmac.compare_digest(expected, (presented or "").encode()):
        raise Forbidden(f"missing or wrong {WEBHOOK_HEADER} header")


def webhook_url(connection: str) -> str:
    return f"{get_settings().public_url.rstrip('/')}/v1/labelstudio/webhook/{connection}"


def _project_id(payload: dict[str, Any]) -> int | None:
    project = payload.get("project")
    value = project.get("id") if isinstance(project, dict) else project
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _annotation_ids(payload: dict[str, Any]) -> list[int]:
    annotations = payload.get("annotations")
    if not isinstance(annotations, list):
        raise DataopsError("ANNOTATIONS_DELETED needs a list of annotations")
    ids: list[int] = []
    for annotation in annotations:
        value = annotation.get("id") if isinstance(annotation, dict) else annotation
        if not isinstance(value, int) or isinstance(value, bool):
            raise DataopsError("every deleted annotation needs an integer id")
        ids.append(value)
    return ids


def receive(
    session: Session,
    connection: str,
    payload: dict[str, Any],
    secret: str | None,
    *,
    start_pull: StartPull,
) -> WebhookResult:
    """Check the sender, then record deletions or start (or reuse) a pull of the queue.

    ``start_pull`` records a sync job for the request and returns its id; the caller decides
    how the job starts once the session commits.
    """
    check_webhook_secret(connection, secret)
    try:
        labeling.check_connection(connection)
    except DataopsError:
        raise NotFound(f"no Label Studio connection {connection!r}") from None
    action = str(payload.get("action", ""))
    project_id = _project_id(payload)
    actor = f"labelstudio:{connection}"
    if project_id is None:
        return WebhookResult(action=action, queue_id=None, job_id=None, deleted=0)
    if action == DELETED_ACTION:
        queue_id, deleted = record_deletions(
            session, connection, project_id, _annotation_ids(payload), actor=actor
        )
        return WebhookResult(action=action, queue_id=queue_id, job_id=None, deleted=deleted)
    queue_id = queue_for_project(session, connection, project_id)
    if queue_id is None or action not in PULL_ACTIONS:
        return WebhookResult(action=action, queue_id=queue_id, job_id=None, deleted=0)
    job_id = pending_pull(session, queue_id) or start_pull(PullRequest(queue_id=queue_id))
    return WebhookResult(action=action, queue_id=queue_id, job_id=job_id, deleted=0)


def record_deletions(
    session: Session,
    connection: str,
    project_id: int,
    annotation_ids: Iterable[int],
    *,
    actor: str | None = None,
) -> tuple[int | None, int]:
    """Deletions reported by the webhook: (queue id or None, deletion records appended).

    Only annotations stored for this project's queue are marked: the secret is per
    connection, so a payload naming one project must not delete another project's labels.
    """
    queue = session.scalar(
        select(Queue).where(Queue.connection == connection, Queue.ls_project_id == project_id)
    )
    if queue is None:
        return None, 0
    named = [labeling.labelstudio_source_id(connection, a) for a in annotation_ids]
    ours = _annotations_of_queue(session, queue.id, named)
    marked = 0
    for source_id in named:
        if source_id not in ours:
            continue
        _, created = labeling.mark_deleted(
            session, source=SOURCE, source_id=source_id, deleted_at=utcnow(), actor=actor
        )
        marked += int(created)
    return queue.id, marked


def _annotations_of_queue(session: Session, queue_id: int, source_ids: list[str]) -> set[str]:
    """The given annotations that the catalog stored for batches of this queue."""
    ours: set[str] = set()
    for start in range(0, len(source_ids), 500):
        chunk = source_ids[start : start + 500]
        ours.update(
            session.scalars(
                select(LabelVersion.source_id)
                .join(Batch, Batch.id == LabelVersion.batch_id)
                .where(
                    LabelVersion.source == SOURCE,
                    LabelVersion.source_id.in_(chunk),
                    Batch.queue_id == queue_id,
                )
                .distinct()
            )
        )
    return ours
