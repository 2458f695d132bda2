"""Each annotator's live answer per batch item, and the references an audit compares them with.

Per batch item and annotator, the answer is the live label version of the batch for one
labeling task (the head of its chain, see ``labeling.service.live_versions``) when its status
is ``submitted`` or ``accepted``. The batch item's gold answer (``gold_label_version_id``) and
a live ``adjudicated`` version are references, not answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.audits.decide import Item, Payload
from dataops.audits.errors import AuditInputError, literal
from dataops.catalog.models import Image
from dataops.labeling import service as labeling
from dataops.labeling.models import (
    ACCEPTED,
    ADJUDICATED,
    SUBMITTED,
    Annotator,
    LabelVersion,
    Vendor,
)
from dataops.selection.models import Batch, BatchItem

NO_VENDOR = "(no vendor)"


@dataclass
class Answers:
    """A batch's items with their answers, and what the audit needs to know about them."""

    items: list[Item]
    kind: str
    task: str
    vendor_of: dict[str, str]
    unattributed: int


def payload_kind(payload: Payload) -> str:
    return "detection" if "boxes" in payload else "classification"


def load_answers(session: Session, batch: Batch, task: str | None) -> Answers:
    """The batch's items in order, each with its answers by annotator name, gold answer and
    adjudication. Without ``task``, the batch must have labels for one task only."""
    rows = session.execute(
        select(BatchItem, Image)
        .join(Image, Image.id == BatchItem.image_id)
        .where(BatchItem.batch_id == batch.id)
        .order_by(BatchItem.position, BatchItem.id)
    ).all()
    items = {bi.image_id: Item(bi, image) for bi, image in rows}
    gold = _gold_answers(session, [bi for bi, _ in rows])
    for bi, _ in rows:
        if bi.is_gold and bi.gold_label_version_id in gold:
            items[bi.image_id].gold = gold[bi.gold_label_version_id]

    task = task or _only_task(session, batch)
    live = [
        v
        for v in labeling.live_versions(session, batch_id=batch.id, task=task)
        if v.id not in gold
        and v.image_id in items
        and v.status in (SUBMITTED, ACCEPTED, ADJUDICATED)
    ]
    names, vendor_of = _annotators(session, {v.annotator_id for v in live})
    unattributed = 0
    for v in live:  # ascending ids: a newer adjudication replaces an older one
        item = items[v.image_id]
        if v.status == ADJUDICATED:
            item.adjudicated = v
        elif v.annotator_id is None:
            unattributed += 1
        else:
            item.answers[names[v.annotator_id]] = v
    for item in items.values():
        item.answers = dict(sorted(item.answers.items()))
    kind = _kind(items.values(), batch, task)
    return Answers(list(items.values()), kind, task, vendor_of, unattributed)


def _gold_answers(session: Session, batch_items: list[BatchItem]) -> dict[int, LabelVersion]:
    ids = {bi.gold_label_version_id for bi in batch_items if bi.is_gold}
    ids.discard(None)
    return {
        v.id: v
        for v in session.scalars(select(LabelVersion).where(LabelVersion.id.in_(sorted(ids))))
    }


def _only_task(session: Session, batch: Batch) -> str:
    tasks = sorted(
        session.scalars(
            select(LabelVersion.task).where(LabelVersion.batch_id == batch.id).distinct()
        )
    )
    if len(tasks) > 1:
        listed = literal(", ".join(tasks))
        raise AuditInputError(
            f"batch {batch.id} has labels for several tasks ({listed}); name one with {{task}}",
            fields=("task",),
        )
    return tasks[0] if tasks else "default"


def _annotators(
    session: Session, annotator_ids: set[int | None]
) -> tuple[dict[int, str], dict[str, str]]:
    """Annotator names by id, and each name's vendor."""
    names: dict[int, str] = {}
    vendor_of: dict[str, str] = {}
    for annotator, vendor_name in session.execute(
        select(Annotator, Vendor.name)
        .outerjoin(Vendor, Vendor.id == Annotator.vendor_id)
        .where(Annotator.id.in_(sorted(i for i in annotator_ids if i is not None)))
    ):
        names[annotator.id] = annotator.name
        vendor_of[annotator.name] = vendor_name or NO_VENDOR
    return names, vendor_of


def _kind(items: Iterable[Item], batch: Batch, task: str) -> str:
    """Classification or detection; one batch cannot mix them for one task."""
    kinds = {
        payload_kind(v.payload)
        for item in items
        for v in [*item.answers.values(), *filter(None, (item.gold, item.adjudicated))]
    }
    if len(kinds) > 1:
        raise AuditInputError(
            f"batch {batch.id} mixes classification and detection labels for task {task!r}; "
            "they cannot be compared"
        )
    return kinds.pop() if kinds else "classification"
