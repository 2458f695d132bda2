"""Batch audits on real catalogs (SQLite and PostgreSQL): metrics, pass rate, gate, relabel."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dataops.audits import service
from dataops.audits.agreement import agreement_summary
from dataops.audits.boxes import BoxAnnotations, box_agreement
from dataops.audits.errors import BatchClosed, NothingToAudit
from dataops.audits.models import Audit
from dataops.audits.ratings import Ratings
from dataops.audits.run import run_audit
from dataops.audits.schemas import AuditRequest
from dataops.catalog.ingest import ingest
from dataops.catalog.models import Image
from dataops.db import session_scope
from dataops.events.models import Event
from dataops.labeling import service as labeling
from dataops.labeling.models import Annotator, Guideline, LabelVersion, Queue, Vendor
from dataops.selection.models import Batch, BatchItem, ImageClaim
from dataops.storage import get_store

RESAMPLES = 200


def _same(a: Any, b: Any) -> bool:
    """Deep equality with float tolerance (pytest.approx does not nest)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return (
            isinstance(a, int | float)
            and isinstance(b, int | float)
            and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        )
    return bool(a == b)


@pytest.fixture
def images(catalog: str, image_dir: Path) -> list[int]:
    """Ids of the ingested images that decoded (sorted by sha256, so the order is stable)."""
    ingest([str(image_dir)], transaction=session_scope)
    with session_scope() as s:
        return list(s.scalars(select(Image.id).where(Image.status == "ok").order_by(Image.sha256)))


@dataclass
class BatchBuilder:
    """Vendors, annotators, a queue and a delivered batch, written row by row."""

    session: Session
    kind: str = "classification"
    annotators: dict[str, int] = field(default_factory=dict)
    batch: Batch | None = None
    _n: int = 0

    def setup(self, vendors: dict[str, str]) -> Batch:
        vendor_ids = {}
        for name in sorted(set(vendors.values())):
            vendor = Vendor(name=name)
            self.session.add(vendor)
            self.session.flush()
            vendor_ids[name] = vendor.id
        for annotator, vendor_name in vendors.items():
            row = Annotator(name=annotator, vendor_id=vendor_ids[vendor_name])
            self.session.add(row)
            self.session.flush()
            self.annotators[annotator] = row.id
        guideline = Guideline(
            name=f"g-{self.kind}",
            version=1,
            sha256=("a" if self.kind == "classification" else "b") * 64,
            kind=self.kind,
            classes=["bird", "cat", "dog"],
            body="# guideline",
            label_config="<View/>",
        )
        self.session.add(guideline)
        self.session.flush()
        queue = Queue(
            name=f"q-{self.kind}", vendor_id=min(vendor_ids.values()), guideline_id=guideline.id
        )
        self.session.add(queue)
        self.session.flush()
        self.batch = Batch(
            purpose="active_learning",
            strategy="random",
            queue_id=queue.id,
            status="delivered",
            seed=7,
        )
        self.session.add(self.batch)
        self.session.flush()
        return self.batch

    def label(
        self,
        image_id: int,
        annotator: str | None,
        payload: dict[str, Any],
        *,
        batch: bool = True,
        status: str = "submitted",
        supersedes: int | None = None,
    ) -> LabelVersion:
        self._n += 1
        assert self.batch is not None
        version = LabelVersion(
            image_id=image_id,
            annotator_id=self.annotators[annotator] if annotator else None,
            batch_id=self.batch.id if batch else None,
            payload=payload,
            source="csv",
            source_id=f"row{self._n}",
            source_key=f"csv:row{self._n}:-",
            supersedes_id=supersedes,
            status=status,
        )
        self.session.add(version)
        self.session.flush()
        return version

    def item(
        self,
        image_id: int,
        position: int,
        *,
        gold: LabelVersion | None = None,
        overlap: bool = False,
    ) -> BatchItem:
        assert self.batch is not None
        row = BatchItem(
            batch_id=self.batch.id,
            image_id=image_id,
            item_key=f"t{self.batch.id}-{image_id}",
            position=position,
            is_overlap=overlap,
            is_gold=gold is not None,
            gold_label_version_id=gold.id if gold else None,
            required_annotations=2 if overlap else 1,
        )
        self.session.add(row)
        self.session.add(ImageClaim(image_id=image_id, batch_id=self.batch.id))
        self.session.flush()
        return row


# Hand-made classification batch. Audited items and whether they pass:
#   0 cat/cat/cat unanimous -> pass       4 bird/bird (bob edited cat -> bird) -> pass
#   1 dog/dog/dog unanimous -> pass       5 gold cat: cat/cat -> pass
#   2 cat/cat/dog majority cat -> fail    6 gold dog: dog (one answer) -> pass
#   3 cat/dog tie -> fail, disputed       7 gold bird: cat -> fail, disputed (gold miss)
# Not audited: 8 (one answer), 9 (no answer). Pass rate 5 / 8 = 0.625.
ANSWERS: dict[int, dict[str, str]] = {
    0: {"alice": "cat", "bob": "cat", "carol": "cat"},
    1: {"alice": "dog", "bob": "dog", "carol": "dog"},
    2: {"alice": "cat", "bob": "cat", "carol": "dog"},
    3: {"alice": "cat", "bob": "dog"},
    4: {"alice": "bird", "bob": "bird"},
    5: {"alice": "cat", "bob": "cat"},
    6: {"alice": "dog"},
    7: {"alice": "cat"},
    8: {"bob": "dog"},
    9: {},
}
GOLD = {5: "cat", 6: "dog", 7: "bird"}
OVERLAP = [0, 1, 2, 3, 4, 5]


@dataclass
class ClassificationBatch:
    batch_id: int
    image_ids: list[int]
    versions: dict[tuple[int, str], int]
    gold_versions: dict[int, int]


def _classification_batch(images: list[int]) -> ClassificationBatch:
    ids = images[:10]
    with session_scope() as s:
        b = BatchBuilder(s)
        batch = b.setup({"alice": "acme", "bob": "acme", "carol": "beta"})
        gold_versions = {
            i: b.label(ids[i], None, {"class": cls}, batch=False, status="accepted").id
            for i, cls in GOLD.items()
        }
        versions: dict[tuple[int, str], int] = {}
        for i, answers in ANSWERS.items():
            gold = s.get(LabelVersion, gold_versions[i]) if i in gold_versions else None
            b.item(ids[i], i, gold=gold, overlap=len(answers) > 1)
            for name, cls in answers.items():
                if (i, name) == (4, "bob"):  # an edit: only the live head counts
                    first = b.label(ids[i], name, {"class": "cat"})
                    versions[i, name] = b.label(
                        ids[i], name, {"class": cls}, supersedes=first.id
                    ).id
                else:
                    versions[i, name] = b.label(ids[i], name, {"class": cls}).id
        # A deleted answer is gone: carol's dog on item 3 would break the tie otherwise.
        gone = b.label(ids[3], "carol", {"class": "dog"})
        b.label(ids[3], "carol", {}, status="deleted", supersedes=gone.id)
        return ClassificationBatch(batch.id, ids, versions, gold_versions)


def _overlap_ratings(ids: list[int]) -> Ratings:
    return Ratings.from_records(
        (ids[i], name, cls) for i in OVERLAP for name, cls in ANSWERS[i].items()
    )


def test_metrics_equal_the_pure_core_and_pass_rate_is_hand_computed(images: list[int]) -> None:
    built = _classification_batch(images)
    with session_scope() as s:
        audit = run_audit(
            s,
            AuditRequest(batch_id=built.batch_id, gate=0.6, seed=3, resamples=RESAMPLES),
            actor="auditor",
        )
        audit_id = audit.id
    with session_scope() as s:
        audit = service.get_audit(s, audit_id)
        metrics = audit.metrics
        assert audit.pass_rate == pytest.approx(5 / 8)
        assert audit.decision == "accepted"
        assert audit.gate == 0.6
        assert metrics["gate"] == {
            "gate": 0.6,
            "pass_rate": pytest.approx(0.625),
            "n_items": 8,
            "n_passed": 5,
            "accepted": True,
        }
        expected = agreement_summary(
            _overlap_ratings(built.image_ids), n_resamples=RESAMPLES, seed=3
        )
        assert "ci" in expected
        assert _same(metrics["summary"], json.loads(json.dumps(expected)))
        assert metrics["summary"]["n_items"] == 6
        assert metrics["summary"]["n_annotators"] == 3
        assert metrics["counts"] == {
            "items": 10,
            "audited": 8,
            "passed": 5,
            "disputed": 2,
            "overlap": 6,
            "gold": 3,
            "adjudicated": 0,
            "single": 1,
            "relabel": 0,
            "unlabeled": 1,
            "unattributed_labels": 0,
            "labels_accepted": 14,
            "labels_rejected": 1,
            "labels_released": 3,
            "items_accepted": 7,
            "items_relabeled": 2,
            "items_released": 0,
        }

        annotators = {row["annotator"]: row for row in metrics["annotators"]}
        assert annotators["alice"]["vendor"] == "acme"
        assert annotators["carol"]["vendor"] == "beta"
        assert annotators["alice"]["n_gold"] == 3
        assert annotators["alice"]["gold_accuracy"] == pytest.approx(2 / 3)
        assert annotators["alice"]["gold_passed"] is False
        assert annotators["bob"]["gold_accuracy"] == 1.0
        assert annotators["bob"]["gold_passed"] is True
        assert annotators["carol"]["n_gold"] == 0
        assert annotators["carol"]["gold_passed"] is None
        vendors = {row["vendor"]: row for row in metrics["vendors"]}
        assert vendors["beta"]["pass_rate"] == pytest.approx(2 / 3)  # items 0, 1 of 0, 1, 2
        assert vendors["acme"]["pass_rate"] == pytest.approx(5 / 8)
        assert vendors["acme"]["gold_accuracy"] == pytest.approx(3 / 4)
        assert {row["label"] for row in metrics["classes"]} == {"bird", "cat", "dog"}
        assert metrics["confusion"]["row_labels"] == ["bird", "cat", "dog"]
        # Reference x given: item 7's gold "bird" was answered "cat".
        assert metrics["confusion"]["values"][0][1] == 1.0
        assert len(metrics["confusion_pairs"]) == 3


def test_accept_marks_winners_and_moves_disputes_to_a_relabel_batch(images: list[int]) -> None:
    built = _classification_batch(images)
    ids = built.image_ids
    with session_scope() as s:
        audit = run_audit(
            s, AuditRequest(batch_id=built.batch_id, gate=0.6, resamples=0), actor="auditor"
        )
        relabel_id = audit.relabel_batch_id
        audit_id = audit.id
    assert relabel_id is not None
    with session_scope() as s:
        batch = s.get(Batch, built.batch_id)
        assert batch is not None
        assert batch.status == "accepted"
        assert batch.closed_at is not None
        status = {key: s.get_one(LabelVersion, vid).status for key, vid in built.versions.items()}
        assert status[2, "carol"] == "rejected"
        assert status[2, "alice"] == status[2, "bob"] == "accepted"
        assert status[8, "bob"] == "accepted"  # a single answer is taken as it is
        # Disputed: relabeled; their answers are kept but released (no verdict).
        assert status[3, "alice"] == status[3, "bob"] == "released"
        assert status[7, "alice"] == "released"
        assert sum(v == "accepted" for v in status.values()) == 14
        accepted = labeling.accepted_label(s, ids[2], "default")
        assert accepted is not None
        assert accepted.payload == {"class": "cat"}
        assert labeling.accepted_label(s, ids[3], "default") is None

        relabel = s.get(Batch, relabel_id)
        assert relabel is not None
        assert (relabel.purpose, relabel.status, relabel.parent_batch_id) == (
            "relabel",
            "draft",
            built.batch_id,
        )
        assert relabel.queue_id == batch.queue_id
        assert relabel.size == 2
        assert relabel.params["reasons"] == {"gold_miss": 1, "tie": 1}
        items = {
            i.image_id: i
            for i in s.scalars(select(BatchItem).where(BatchItem.batch_id == relabel_id))
        }
        assert set(items) == {ids[3], ids[7]}
        assert items[ids[7]].is_gold
        assert items[ids[7]].gold_label_version_id == built.gold_versions[7]
        assert not items[ids[3]].is_gold
        assert all(i.required_annotations == 3 and i.is_overlap for i in items.values())
        claims = {c.image_id: c.batch_id for c in s.scalars(select(ImageClaim))}
        assert claims == {ids[3]: relabel_id, ids[7]: relabel_id}

        actions = {
            (e.action, e.entity_type, e.entity_id)
            for e in s.scalars(select(Event).where(Event.actor == "auditor"))
        }
        assert ("audit.created", "audit", str(audit_id)) in actions
        assert ("batch.accepted", "batch", str(built.batch_id)) in actions
        assert ("batch.created", "batch", str(relabel_id)) in actions
        assert ("label.status", "label_version", str(built.versions[2, "carol"])) in actions


def test_reject_below_the_gate_relabels_failures_and_releases_the_rest(
    images: list[int],
) -> None:
    built = _classification_batch(images)
    with session_scope() as s:
        audit = run_audit(s, AuditRequest(batch_id=built.batch_id, resamples=0), actor="auditor")
        assert (audit.decision, audit.gate) == ("rejected", 0.95)
        assert audit.relabel_batch_id is not None
    with session_scope() as s:
        batch = s.get(Batch, built.batch_id)
        assert batch is not None
        assert batch.status == "rejected"
        # Default policy: every answer is released, none accepted or rejected; the items
        # that failed (2 majority, 3 tie, 7 gold miss) are relabeled, the rest go to the pool.
        statuses = {s.get_one(LabelVersion, v).status for v in built.versions.values()}
        assert statuses == {"released"}
        claimed = {c.image_id: c.batch_id for c in s.scalars(select(ImageClaim))}
        ids = built.image_ids
        assert claimed == {ids[i]: audit.relabel_batch_id for i in (2, 3, 7)}
        with pytest.raises(BatchClosed, match="already rejected by audit"):
            run_audit(s, AuditRequest(batch_id=built.batch_id))


def test_gate_boundary_is_inclusive(images: list[int]) -> None:
    built = _classification_batch(images)
    with session_scope() as s:
        assert (
            run_audit(s, AuditRequest(batch_id=built.batch_id, gate=0.625, resamples=0)).decision
            == "accepted"
        )


def test_audit_rows_are_immutable(images: list[int]) -> None:
    built = _classification_batch(images)
    with session_scope() as s:
        audit_id = run_audit(s, AuditRequest(batch_id=built.batch_id, resamples=0)).id
    with pytest.raises(IntegrityError, match="append-only"), session_scope() as s:
        s.execute(update(Audit).where(Audit.id == audit_id).values(decision="accepted"))
    with pytest.raises(IntegrityError, match="append-only"), session_scope() as s:
        s.execute(delete(Audit).where(Audit.id == audit_id))
    with session_scope() as s:
        assert service.get_audit(s, audit_id).decision == "rejected"


def test_report_files_hold_the_decision_and_disputed_thumbnails(
    images: list[int], tmp_path: Path
) -> None:
    built = _classification_batch(images)
    with session_scope() as s:
        audit = run_audit(s, AuditRequest(batch_id=built.batch_id, gate=0.6, resamples=0))
        audit_id = audit.id
        assert audit.report_html_key == f"audits/{audit_id}/report.html"
        assert audit.report_json_key == f"audits/{audit_id}/report.json"
    store = get_store()
    page = store.get(f"audits/{audit_id}/report.html").decode()
    assert "ACCEPTED" in page
    assert "62.5%" in page
    assert page.count("data:image/jpeg;base64,") == 2  # items 3 and 7
    assert "gold miss: the gold answer is bird" in page
    document = json.loads(store.get(f"audits/{audit_id}/report.json"))
    assert document["decision"] == "accepted"
    by_image = {row["image_id"]: row for row in document["items"]}
    ids = built.image_ids
    assert [by_image[ids[i]]["passed"] for i in range(10)] == [
        True,
        True,
        False,
        False,
        True,
        True,
        True,
        False,
        None,
        None,
    ]
    assert by_image[ids[3]]["disputed"] == "tie"
    assert by_image[ids[2]]["label"] == {"class": "cat"}

    with session_scope() as s:
        written = service.export_report(s, audit_id, tmp_path / "out")
    assert [p.name for p in written] == [f"audit-{audit_id}.html", f"audit-{audit_id}.json"]
    assert "ACCEPTED" in written[0].read_text()


def test_a_batch_without_overlap_or_gold_cannot_be_audited(images: list[int]) -> None:
    with session_scope() as s:
        b = BatchBuilder(s)
        batch = b.setup({"alice": "acme"})
        for position, image_id in enumerate(images[:3]):
            b.item(image_id, position)
            b.label(image_id, "alice", {"class": "cat"})
        batch_id = batch.id
    with (
        pytest.raises(NothingToAudit, match="no item answered by two annotators"),
        session_scope() as s,
    ):
        run_audit(s, AuditRequest(batch_id=batch_id))
    with session_scope() as s:
        batch = s.get(Batch, batch_id)
        assert batch is not None
        assert batch.status == "delivered"
        assert s.scalar(select(Audit.id)) is None


def _box(cls: str, x: float, y: float, w: float = 0.2, h: float = 0.2) -> dict[str, Any]:
    return {"class": cls, "x": x, "y": y, "w": w, "h": h}


def test_detection_batch_uses_box_agreement(images: list[int]) -> None:
    answers = {
        0: {
            "ann": [_box("cat", 0.1, 0.1), _box("dog", 0.5, 0.5)],
            "ben": [_box("cat", 0.1, 0.1), _box("dog", 0.5, 0.5)],
        },
        1: {"ann": [_box("cat", 0.1, 0.1)], "ben": [_box("cat", 0.12, 0.11)]},
        2: {"ann": [_box("cat", 0.1, 0.1), _box("cat", 0.6, 0.6)], "ben": [_box("cat", 0.1, 0.1)]},
        3: {"ann": [], "ben": []},
    }
    ids = images[:4]
    with session_scope() as s:
        b = BatchBuilder(s, kind="detection")
        batch = b.setup({"ann": "acme", "ben": "acme"})
        for i, per in answers.items():
            b.item(ids[i], i, overlap=True)
            for name, boxes in per.items():
                b.label(ids[i], name, {"boxes": boxes})
        audit = run_audit(s, AuditRequest(batch_id=batch.id, gate=0.7, resamples=0))
        metrics = audit.metrics
        relabel_id = audit.relabel_batch_id
    assert audit.pass_rate == pytest.approx(3 / 4)
    assert audit.decision == "accepted"
    records = [
        (ids[i], name, box["class"], box["x"], box["y"], box["w"], box["h"])
        for i, per in answers.items()
        for name, boxes in per.items()
        for box in boxes
    ]
    labeled = [(ids[i], name) for i, per in answers.items() for name in per]
    expected = box_agreement(BoxAnnotations.from_records(records, labeled=labeled))
    assert _same(metrics["boxes"], json.loads(json.dumps(expected)))
    assert metrics["summary"]["mean_f1"] == pytest.approx(expected["mean_f1"])
    assert metrics["kind"] == "detection"
    classes = {row["label"]: row for row in metrics["classes"]}
    assert classes["cat"]["specific_agreement"] == pytest.approx(2 * 3 / 7)
    with session_scope() as s:
        items = list(s.scalars(select(BatchItem.image_id).where(BatchItem.batch_id == relabel_id)))
        assert items == [ids[2]]
