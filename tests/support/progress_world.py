"""Two vendor queues with batches, items and label versions written row by row, so the
progress numbers the tests expect are counted by hand here, not by the code under test.

Queue ``acme-q`` (vendor acme, due in 2 days):
- batch A1, in progress, due yesterday (overdue), 6 pushed items: 0 gold, 1 overlap.
  item 0: ann1 answers, accepted                               (answer day -1)
  item 1: ann1 answers (day -2) then edits it (day -1), accepted; ann2 answers, rejected (day -1)
  item 2: ann1 answers, rejected                               (day 0)
  item 3: ann1 answers (day -2), then the answer is deleted
  item 4: ann2 answers, submitted                              (day 0, dated by created_at)
  item 5: ann2 answers, submitted                              (day -5: before a 3-day window)
  → sent 6, answered 5 (0, 1, 2, 4, 5), accepted 2 (0, 1), rejected 1 (2), live answers 6
- batch A2, a draft: 2 items, not pushed
- batch A3, sent, due tomorrow: 3 pushed items (one overlap), no answers
Queue ``globex-q`` (vendor globex): batch B1 sent, 2 pushed items, item 0 answered and
accepted today.

Answer days are noon UTC of today + offset. PYTEST_DONT_REWRITE: helpers only.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

_serial = itertools.count(1)

ACME_QUEUE, GLOBEX_QUEUE = "acme-q", "globex-q"
# What the scenario's counts are, written out (see the module docstring).
ACME = {
    "items": 11,
    "sent": 9,
    "answered": 5,
    "accepted": 2,
    "rejected": 1,
    "answers": 6,
    "overlap_items": 2,
    "gold_items": 1,
}
A1 = {
    "items": 6,
    "sent": 6,
    "answered": 5,
    "accepted": 2,
    "rejected": 1,
    "answers": 6,
    "overlap_items": 1,
    "gold_items": 1,
}
GLOBEX = {
    "items": 2,
    "sent": 2,
    "answered": 1,
    "accepted": 1,
    "rejected": 0,
    "answers": 1,
    "overlap_items": 0,
    "gold_items": 0,
}
# New answers per day, oldest first, over the last 3 days (today last).
ACME_THROUGHPUT = [2, 2, 2]
ACME_THROUGHPUT_7 = [0, 1, 0, 0, 2, 2, 2]
GLOBEX_THROUGHPUT = [0, 0, 1]


@dataclass(frozen=True)
class ProgressWorld:
    acme_queue: int
    globex_queue: int
    a1: int
    a2: int
    a3: int
    b1: int
    a1_images: list[int]
    now: datetime


def noon(now: datetime, days: int) -> datetime:
    day = (now.astimezone(UTC) + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def build(now: datetime | None = None) -> ProgressWorld:
    from dataops.db import session_scope
    from dataops.labeling.models import Annotator, Guideline, Queue, Vendor
    from dataops.scoring.models import ModelVersion, Prediction

    moment = now or datetime.now(UTC)
    with session_scope() as s:
        acme, globex = Vendor(name="acme"), Vendor(name="globex")
        guideline = Guideline(
            name="helmets",
            version=1,
            sha256=hashlib.sha256(b"helmets v1").hexdigest(),
            kind="classification",
            classes=["helmet", "none"],
            body="# Helmets\n",
            label_config="<View/>",
        )
        s.add_all([acme, globex, guideline])
        s.flush()
        qa = Queue(name=ACME_QUEUE, vendor_id=acme.id, guideline_id=guideline.id, due_days=2.0)
        qb = Queue(name=GLOBEX_QUEUE, vendor_id=globex.id, guideline_id=guideline.id)
        ann1 = Annotator(name="ann1@acme", vendor_id=acme.id)
        ann2 = Annotator(name="ann2@acme", vendor_id=acme.id)
        ann3 = Annotator(name="ann3@globex", vendor_id=globex.id)
        model = ModelVersion(
            name="clf",
            version=1,
            sha256="d" * 64,
            blob_key="d" * 64,
            classes=["helmet", "none"],
            input_spec={},
        )
        s.add_all([qa, qb, ann1, ann2, ann3, model])
        s.flush()
        a1 = _batch(s, qa.id, "in_progress", moment, due=moment - timedelta(days=1), model=model.id)
        a1_images = _items(s, a1, 6, pushed=True, gold={0}, overlap={1})
        a2 = _batch(s, qa.id, "draft", moment)
        _items(s, a2, 2, pushed=False)
        a3 = _batch(s, qa.id, "sent", moment, due=moment + timedelta(days=1))
        _items(s, a3, 3, pushed=True, overlap={0})
        b1 = _batch(s, qb.id, "sent", moment)
        b1_images = _items(s, b1, 2, pushed=True)
        s.add(
            Prediction(
                model_version_id=model.id,
                image_id=a1_images[0],
                probs=[0.8, 0.2],
                predicted_class="helmet",
                predicted_score=0.8,
                least_confidence=0.2,
                margin=0.6,
                entropy=0.5,
            )
        )
        day = lambda offset: noon(moment, offset)  # noqa: E731
        label = _labeler(s)
        label(a1, a1_images[0], ann1.id, "helmet", day(-1), status="accepted")
        first = label(a1, a1_images[1], ann1.id, "none", day(-2))
        label(a1, a1_images[1], ann1.id, "helmet", day(-1), status="accepted", supersedes=first)
        label(a1, a1_images[1], ann2.id, "none", day(-1), status="rejected")
        label(a1, a1_images[2], ann1.id, "none", day(0), status="rejected")
        gone = label(a1, a1_images[3], ann1.id, "none", day(-2))
        label(a1, a1_images[3], ann1.id, "none", day(-1), status="deleted", supersedes=gone)
        label(a1, a1_images[4], ann2.id, "helmet", None, created=day(0))
        label(a1, a1_images[5], ann2.id, "none", day(-5))
        label(b1, b1_images[0], ann3.id, "helmet", day(0), status="accepted")
        return ProgressWorld(qa.id, qb.id, a1, a2, a3, b1, a1_images, moment)


def _batch(
    s: Any,
    queue_id: int,
    status: str,
    now: datetime,
    *,
    due: datetime | None = None,
    model: int | None = None,
) -> int:
    from dataops.selection.models import Batch

    sent = None if status == "draft" else now - timedelta(days=3)
    batch = Batch(
        purpose="active_learning",
        strategy="least_confidence",
        queue_id=queue_id,
        status=status,
        sent_at=sent,
        due_at=due,
        model_version_id=model,
    )
    s.add(batch)
    s.flush()
    return int(batch.id)


def _items(
    s: Any,
    batch_id: int,
    count: int,
    *,
    pushed: bool,
    gold: set[int] = frozenset(),
    overlap: set[int] = frozenset(),  # type: ignore[assignment]
) -> list[int]:
    from dataops.catalog.models import Image
    from dataops.labeling.models import TaskKey
    from dataops.selection.models import Batch, BatchItem

    ids = []
    for position in range(count):
        n = next(_serial)
        image = Image(
            sha256=hashlib.sha256(f"img{n}".encode()).hexdigest(), uri=f"/photos/p{n}.jpg"
        )
        s.add(image)
        s.flush()
        item = BatchItem(
            batch_id=batch_id,
            image_id=image.id,
            item_key=f"item-{batch_id}-{n}",
            position=position,
            score=0.5 + position / 100,
            is_gold=position in gold,
            is_overlap=position in overlap,
            required_annotations=2 if position in overlap else 1,
            ls_task_id=10_000 + n if pushed else None,
            pushed_at=datetime.now(UTC) if pushed else None,
        )
        s.add(item)
        s.flush()
        if pushed:
            queue_id = s.get(Batch, batch_id).queue_id
            s.add(
                TaskKey(
                    key=hashlib.md5(f"key{n}".encode()).hexdigest(),
                    batch_item_id=item.id,
                    batch_id=batch_id,
                    image_id=image.id,
                    queue_id=queue_id,
                    is_gold=item.is_gold,
                )
            )
        ids.append(int(image.id))
    s.flush()
    return ids


def _labeler(s: Any) -> Any:
    from dataops.labeling.models import LabelVersion

    def label(
        batch_id: int,
        image_id: int,
        annotator_id: int,
        value: str,
        answered: datetime | None,
        *,
        status: str = "submitted",
        supersedes: int | None = None,
        created: datetime | None = None,
    ) -> int:
        n = next(_serial)
        version = LabelVersion(
            image_id=image_id,
            annotator_id=annotator_id,
            batch_id=batch_id,
            task="helmets",
            payload={"class": value},
            source="labelstudio",
            source_id=f"default:{n}",
            source_updated_at=answered,
            source_key=f"labelstudio:default:{n}:x",
            supersedes_id=supersedes,
            status=status,
            created_at=created or datetime.now(UTC),
        )
        s.add(version)
        s.flush()
        return int(version.id)

    return label
