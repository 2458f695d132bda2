"""A labeling scenario for the performance report, and the report's numbers computed
independently from the raw rows (numpy, scikit-learn's cohen_kappa_score, statsmodels' Wilson
interval). ``build(session)`` writes vendors, annotators, a queue, two batches with pushed
items, gold items, answers with lead times (some edited, one deleted, one after the period),
and runs the first batch's audit, which accepts answers and makes a relabel batch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import select
from sqlalchemy.orm import Session
from statsmodels.stats.proportion import proportion_confint

from dataops.audits.models import Audit
from dataops.audits.run import run_audit
from dataops.audits.schemas import AuditRequest
from dataops.catalog.models import Image
from dataops.labeling.models import (
    ACCEPTED,
    ADJUDICATED,
    DELETED,
    Annotator,
    Guideline,
    LabelVersion,
    Queue,
    Vendor,
)
from dataops.performance.service import NO_VENDOR
from dataops.selection.models import Batch, BatchItem

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SINCE = datetime(2026, 11, 1, tzinfo=UTC)
UNTIL = datetime(2026, 11, 15, tzinfo=UTC)
CLASSES = ["bird", "cat", "dog"]
TEAM = {"a1": "acme", "a2": "acme", "b1": "beta", "b2": "beta", "solo": None}


@dataclass
class Scenario:
    """Writes the rows the report reads: batches pushed to a queue, answers with lead times
    (some edited, one deleted, one outside the period), gold items, an audit and its relabel."""

    session: Session
    rng: np.random.Generator
    n: int = 0

    def version(self, image: int, annotator: int | None, batch: int | None, **kw: Any) -> int:
        self.n += 1
        row = LabelVersion(
            image_id=image,
            annotator_id=annotator,
            batch_id=batch,
            source="csv",
            source_id=f"r{self.n}",
            source_key=f"csv:r{self.n}:-",
            **kw,
        )
        self.session.add(row)
        self.session.flush()
        return row.id

    def answer(self, image: int, annotator: int, batch: int, truth: str, when: datetime) -> None:
        right = self.rng.random() < 0.7
        cls = truth if right else str(self.rng.choice(CLASSES))
        lead = None if self.rng.random() < 0.15 else round(float(self.rng.gamma(2.0, 6.0)), 3)
        first = None
        if self.rng.random() < 0.2:  # an earlier version, superseded by an edit
            first = self.version(
                image,
                annotator,
                batch,
                payload={"class": str(self.rng.choice(CLASSES))},
                source_updated_at=when - timedelta(hours=1),
                lead_time=1.0,
            )
        self.version(
            image,
            annotator,
            batch,
            payload={"class": cls},
            source_updated_at=when,
            lead_time=lead,
            supersedes_id=first,
        )


def build(session: Session) -> None:
    sc = Scenario(session, np.random.default_rng(11))
    vendors = {}
    for name in ("acme", "beta"):
        vendors[name] = Vendor(name=name)
        session.add(vendors[name])
    session.flush()
    ann = {}
    for name, vendor in TEAM.items():
        row = Annotator(name=name, vendor_id=vendors[vendor].id if vendor else None)
        session.add(row)
        session.flush()
        ann[name] = row.id
    guideline = Guideline(
        name="animals",
        version=1,
        sha256="c" * 64,
        kind="classification",
        classes=CLASSES,
        body="# animals",
        label_config="<View/>",
    )
    session.add(guideline)
    session.flush()
    queue = Queue(name="q", vendor_id=vendors["acme"].id, guideline_id=guideline.id)
    session.add(queue)
    session.flush()
    images = []
    for i in range(40):
        image = Image(sha256=f"{i:064x}", uri=f"file:///nowhere/{i}.jpg")
        session.add(image)
        session.flush()
        images.append(image.id)
    truth = {image: str(sc.rng.choice(CLASSES)) for image in images}
    gold = {
        image: sc.version(image, None, None, payload={"class": truth[image]}, status=ACCEPTED)
        for image in images[:6]
    }

    def batch(status: str, due: datetime | None, picks: list[int], pushed: datetime) -> int:
        row = Batch(
            purpose="active_learning",
            strategy="random",
            queue_id=queue.id,
            status=status,
            due_at=due,
            sent_at=pushed,
        )
        session.add(row)
        session.flush()
        for position, image in enumerate(picks):
            session.add(
                BatchItem(
                    batch_id=row.id,
                    image_id=image,
                    item_key=f"b{row.id}-{image}",
                    position=position,
                    is_gold=image in gold,
                    gold_label_version_id=gold.get(image),
                    pushed_at=pushed + timedelta(minutes=position),
                )
            )
        session.flush()
        return row.id

    first = batch("delivered", T0 + timedelta(days=2), images[:24], T0)
    for image in images[:24]:
        size = int(sc.rng.integers(1, 4))
        for name in sc.rng.choice(list(TEAM), size=size, replace=False):
            when = T0 + timedelta(hours=float(sc.rng.uniform(0.5, 90)))
            sc.answer(image, ann[str(name)], first, truth[image], when)
    second = batch("in_progress", None, images[24:38], T0 + timedelta(days=3))
    for image in images[24:38]:
        for name in ("b1", "b2", "solo"):
            if sc.rng.random() < 0.8:
                when = T0 + timedelta(days=3, hours=float(sc.rng.uniform(1, 48)))
                sc.answer(image, ann[name], second, truth[image], when)
    # Not answers in the period: given after it, and one withdrawn (deleted) in Label Studio.
    sc.version(images[38], ann["a1"], second, payload={"class": "cat"}, source_updated_at=UNTIL)
    gone = sc.version(
        images[39], ann["a2"], second, payload={"class": "cat"}, source_updated_at=T0, lead_time=5
    )
    sc.version(images[39], ann["a2"], second, payload={}, status=DELETED, supersedes_id=gone)
    session.flush()
    # The first batch's audit changes its answers' statuses and makes a relabel batch.
    audit = run_audit(session, AuditRequest(batch_id=first, gate=0.0, resamples=0))
    assert audit.relabel_batch_id is not None


def expected(session: Session, by_vendor: bool) -> dict[str, dict[str, Any]]:
    """The report's numbers, from the raw rows in plain Python and the reference libraries."""
    versions = list(session.scalars(select(LabelVersion)))
    superseded = {v.supersedes_id for v in versions}
    by_id = {v.id: v for v in versions}
    annotators = {a.id: a for a in session.scalars(select(Annotator))}
    vendor_names = {v.id: v.name for v in session.scalars(select(Vendor))}
    items = {(i.batch_id, i.image_id): i for i in session.scalars(select(BatchItem))}
    batches = {b.id: b for b in session.scalars(select(Batch))}
    audits = {a.batch_id: a for a in session.scalars(select(Audit).order_by(Audit.id.desc()))}

    def when(v: LabelVersion) -> datetime:
        return v.source_updated_at or v.created_at

    def group(v: LabelVersion) -> str:
        a = annotators[v.annotator_id]  # type: ignore[index]
        if not by_vendor:
            return a.name
        return vendor_names[a.vendor_id] if a.vendor_id else NO_VENDOR

    heads = [
        v
        for v in versions
        if v.id not in superseded
        and v.batch_id is not None
        and v.annotator_id is not None
        and v.status not in (DELETED, ADJUDICATED)
        and SINCE <= when(v) < UNTIL
    ]
    out: dict[str, dict[str, Any]] = {}
    for name in sorted({group(v) for v in heads}):
        mine = [v for v in heads if group(v) == name]
        leads = [v.lead_time for v in mine if v.lead_time is not None]
        hours = [
            (when(v) - batches[v.batch_id].sent_at).total_seconds() / 3600  # type: ignore[index,operator]
            for v in mine
            if batches[v.batch_id].sent_at is not None  # type: ignore[index]
        ]
        due = [v for v in mine if batches[v.batch_id].due_at is not None]  # type: ignore[index]
        late = [v for v in due if when(v) > batches[v.batch_id].due_at]  # type: ignore[index,operator]
        gold_hits = []
        for v in mine:
            item = items[(v.batch_id, v.image_id)]  # type: ignore[index]
            if item.is_gold:
                gold_hits.append(
                    v.payload["class"] == by_id[item.gold_label_version_id].payload["class"]  # type: ignore[index]
                )
        y1, y2 = [], []
        for v in mine:
            for o in heads:
                if (o.batch_id, o.image_id, o.task) == (v.batch_id, v.image_id, v.task) and (
                    o.annotator_id != v.annotator_id
                ):
                    y1.append(v.payload["class"])
                    y2.append(o.payload["class"])
        audited = [v for v in mine if v.batch_id in audits]
        relabel_items = {(audits[v.batch_id].relabel_batch_id, v.image_id) for v in audited} & set(
            items
        )
        reworked = [
            v for v in audited if (audits[v.batch_id].relabel_batch_id, v.image_id) in relabel_items
        ]
        row: dict[str, Any] = {
            "answers": len(mine),
            "answers_per_day": len(mine) / 14,
            "lead_time_answers": len(leads),
            "median_lead_time_s": float(np.median(leads)) if leads else None,
            "turnaround_answers": len(hours),
            "median_turnaround_h": float(np.median(hours)) if hours else None,
            "due_answers": len(due),
            "late_answers": len(late),
            "late_share": len(late) / len(due) if due else None,
            "gold_answers": len(gold_hits),
            "gold_correct": sum(gold_hits),
            "gold_accuracy": sum(gold_hits) / len(gold_hits) if gold_hits else None,
            "kappa_pairs": len(y1),
            "kappa": _finite(float(cohen_kappa_score(y1, y2))) if y1 else None,
            "audited_answers": len(audited),
            "accepted_answers": sum(v.status == ACCEPTED for v in audited),
            "reworked_answers": len(reworked),
        }
        if gold_hits:
            low, high = proportion_confint(sum(gold_hits), len(gold_hits), method="wilson")
            row["gold_ci_low"], row["gold_ci_high"] = float(low), float(high)
        else:
            row["gold_ci_low"] = row["gold_ci_high"] = None
        n = len(audited)
        row["first_pass_acceptance"] = row["accepted_answers"] / n if n else None
        row["rework_rate"] = len(reworked) / n if n else None
        out[name] = row
    return out


def _finite(value: float) -> float | None:
    return None if np.isnan(value) else value
