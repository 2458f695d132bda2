"""Gold and overlap items of a batch, planned once before its first push.

Gold and regular tasks must look alike to a vendor: the same key shape, the same kind of
pre-annotation, overlap drawn from all items alike. So gold is drawn in the regular items'
proportions of predicted classes, and the overlap items from regular and gold items together.
"""

from __future__ import annotations

import math
from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.config import get_settings
from dataops.events import service as events
from dataops.labeling import service as labeling
from dataops.labeling.models import ACCEPTED, ADJUDICATED, Guideline, LabelVersion, Queue
from dataops.labelstudio.service import chunks, rank, share
from dataops.selection.models import Batch, BatchItem


def _gold_candidates(
    session: Session, guideline: Guideline, exclude: set[int]
) -> list[tuple[int, int, str]]:
    """(image id, label version id, sha256) of images whose accepted label is a valid answer."""
    from dataops.catalog.models import OK, Image

    classes = {c.casefold() for c in guideline.classes}
    versions = [
        v
        for v in labeling.live_versions(session, task=guideline.name)
        if v.status in (ACCEPTED, ADJUDICATED) and v.image_id not in exclude
    ]
    answers: dict[int, LabelVersion] = {}
    for version in versions:
        payload = version.payload
        if guideline.kind == "classification":
            valid = str(payload.get("class", "")).casefold() in classes
        else:
            valid = all(str(b.get("class", "")).casefold() in classes for b in payload["boxes"])
        current = answers.get(version.image_id)
        # Prefer an adjudicated answer, then the newest.
        if valid and (
            current is None
            or (version.status == ADJUDICATED, version.id)
            > (current.status == ADJUDICATED, current.id)
        ):
            answers[version.image_id] = version
    found: list[tuple[int, int, str]] = []
    for chunk in chunks(sorted(answers), 500):
        rows = session.execute(
            select(Image.id, Image.sha256).where(Image.id.in_(chunk), Image.status == OK)
        )
        found.extend((image_id, answers[image_id].id, sha) for image_id, sha in rows)
    return found


def _predicted(
    session: Session, model_version_id: int | None, kind: str, classes: list[str], ids: list[int]
) -> dict[int, str]:
    """The class each image's pre-annotation will show (see ``_predictions``)."""
    from dataops.scoring.models import Prediction

    if model_version_id is None or kind != "classification" or not ids:
        return {}
    known = {c.casefold() for c in classes}
    found: dict[int, str] = {}
    for chunk in chunks(sorted(ids), 500):
        rows = session.execute(
            select(Prediction.image_id, Prediction.predicted_class).where(
                Prediction.model_version_id == model_version_id, Prediction.image_id.in_(chunk)
            )
        )
        found.update(
            (image_id, str(cls).casefold())
            for image_id, cls in rows
            if str(cls).casefold() in known
        )
    return found


def _apportion(counts: Counter[str], total: int) -> dict[str, int]:
    """``total`` split in proportion to ``counts`` (largest remainder, ties by name)."""
    whole = sum(counts.values())
    if not whole or total <= 0:
        return {}
    exact = {name: total * n / whole for name, n in counts.items()}
    out = {name: math.floor(value) for name, value in exact.items()}
    left = total - sum(out.values())
    for name in sorted(exact, key=lambda n: (out[n] - exact[n], n))[:left]:
        out[name] += 1
    return out


def _pick_gold(
    session: Session,
    batch: Batch,
    guideline: Guideline,
    regular: list[BatchItem],
    candidates: list[tuple[int, int, str]],
    wanted: int,
) -> list[tuple[int, int, str]]:
    """Gold whose pre-annotations look like the regular items': the same share with and
    without one (a side short of candidates leaves gold missing), and the predicted classes in
    the regular items' proportions as far as the pool allows (an uncertainty batch leans to
    some classes; gold drawn at random would not)."""
    candidates = sorted(candidates, key=lambda c: rank("gold", batch.seed, batch.id, c[2]))
    predicted = _predicted(
        session,
        batch.model_version_id,
        guideline.kind,
        list(guideline.classes),
        [i.image_id for i in regular] + [c[0] for c in candidates],
    )
    if not predicted:
        return candidates[:wanted]
    shown = Counter(predicted[i.image_id] for i in regular if i.image_id in predicted)
    with_prediction = math.floor(sum(shown.values()) / max(1, len(regular)) * wanted + 0.5)
    pool = [c for c in candidates if c[0] in predicted]
    chosen: list[tuple[int, int, str]] = []
    for name, count in sorted(_apportion(shown, with_prediction).items()):
        chosen += [c for c in pool if predicted[c[0]] == name][:count]
    taken = {c[0] for c in chosen}
    chosen += [c for c in pool if c[0] not in taken][: with_prediction - len(chosen)]
    chosen += [c for c in candidates if c[0] not in predicted][: wanted - with_prediction]
    return sorted(chosen, key=lambda c: rank("gold", batch.seed, batch.id, c[2]))


def plan_review_items(
    session: Session, batch: Batch, guideline: Guideline, *, actor: str | None = None
) -> dict[str, int]:
    """Add the gold items, then choose the overlap items among all of them, once, before the
    first push.

    Both are chosen deterministically from the batch seed. Gold items are images with an
    accepted label that the queue's vendor was not shown within ``gold_repeat_days`` (a
    repeat would mark them), added with the same kind of task key as any other item. Overlap
    items (two annotators) are drawn from regular and gold items alike, so the overlap a task
    gets says nothing about gold either.
    """
    items = list(session.scalars(select(BatchItem).where(BatchItem.batch_id == batch.id)))
    planned = {"overlap_items": 0, "gold_items": 0, "gold_missing": 0}
    if any(item.ls_task_id is not None for item in items):
        return planned
    from dataops.catalog.models import Image
    from dataops.labeling import tasks

    regular = [item for item in items if not item.is_gold]
    if batch.gold > 0 and not any(item.is_gold for item in items):
        wanted = share(batch.gold, len(regular))
        exclude = {i.image_id for i in items}
        queue = session.get(Queue, batch.queue_id) if batch.queue_id is not None else None
        if queue is not None:
            exclude |= tasks.shown_to_vendor(
                session, queue.vendor_id, days=get_settings().gold_repeat_days
            )
        candidates = _gold_candidates(session, guideline, exclude)
        position = max((item.position for item in items), default=-1)
        for image_id, version_id, _sha in _pick_gold(
            session, batch, guideline, regular, candidates, wanted
        ):
            position += 1
            gold = BatchItem(
                batch_id=batch.id,
                image_id=image_id,
                item_key=rank("dataops-item", batch.id, image_id),
                position=position,
                is_gold=True,
                gold_label_version_id=version_id,
                required_annotations=1,
            )
            session.add(gold)
            items.append(gold)
            planned["gold_items"] += 1
        planned["gold_missing"] = wanted - planned["gold_items"]
        session.flush()
    if batch.overlap > 0 and not any(item.is_overlap for item in items):
        shas = dict(
            session.execute(
                select(Image.id, Image.sha256)
                .join(BatchItem, BatchItem.image_id == Image.id)
                .where(BatchItem.batch_id == batch.id)
            ).all()
        )
        chosen = sorted(items, key=lambda i: rank("overlap", batch.seed, shas[i.image_id]))
        for item in chosen[: share(batch.overlap, len(items))]:
            item.is_overlap = True
            planned["overlap_items"] += 1
    for item in items:
        if item.is_overlap:
            item.required_annotations = max(item.required_annotations, 2)
    session.flush()
    if planned["overlap_items"] or planned["gold_items"] or planned["gold_missing"]:
        events.record(session, "batch.planned", "batch", batch.id, actor=actor, details=planned)
    return planned
