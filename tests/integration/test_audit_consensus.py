"""CROWDLAB consensus in a batch audit on PostgreSQL: beside the agreement metrics, and as the
queue's acceptance rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dataops.audits.run import run_audit
from dataops.audits.schemas import AuditRequest
from dataops.catalog.ingest import ingest
from dataops.catalog.models import Image
from dataops.db import session_scope
from dataops.labeling.models import Annotator, Guideline, LabelVersion, Queue, Vendor
from dataops.scoring.models import ModelVersion, Prediction
from dataops.selection.models import Batch, BatchItem, ImageClaim
from dataops.storage import get_store

CLASSES = ["bird", "cat", "dog"]
# True classes of the items; "good" and "fair" answer them right, "poor" mostly wrong.
TRUTH = ["cat", "dog", "bird", "cat", "dog", "bird", "cat", "dog", "bird", "cat", "dog"]
WRONG = {"cat": "dog", "dog": "bird", "bird": "cat"}
TIE = 9  # good is absent: fair says cat, poor says dog, the model says cat
SINGLE = 10  # poor alone says bird, the model says dog


def _answers(i: int, truth: str) -> dict[str, str]:
    if i == TIE:
        return {"fair": truth, "poor": WRONG[truth]}
    if i == SINGLE:
        return {"poor": WRONG[truth]}
    poor = truth if i in (0, 1) else WRONG[truth]
    return {"good": truth, "fair": truth if i != 4 else WRONG[truth], "poor": poor}


def _world(rule: str, image_ids: list[int]) -> int:
    """A queue with the rule, a delivered batch answered by three annotators, and a model
    version that scored every image (confident in the true class)."""
    with session_scope() as s:
        vendor = Vendor(name="acme")
        s.add(vendor)
        s.flush()
        names = {}
        for name in ("fair", "good", "poor"):
            row = Annotator(name=name, vendor_id=vendor.id)
            s.add(row)
            s.flush()
            names[name] = row.id
        guideline = Guideline(
            name="animals",
            version=1,
            sha256="a" * 64,
            kind="classification",
            classes=CLASSES,
            body="# guideline",
            label_config="<View/>",
        )
        s.add(guideline)
        s.flush()
        queue = Queue(name="q", vendor_id=vendor.id, guideline_id=guideline.id, accept_rule=rule)
        s.add(queue)
        s.flush()
        batch = Batch(
            purpose="active_learning", strategy="random", queue_id=queue.id, status="delivered"
        )
        mv = ModelVersion(
            name="net",
            version=1,
            sha256="b" * 64,
            blob_key="models/b",
            classes=CLASSES,
            input_spec={},
            is_current=True,
        )
        s.add_all([batch, mv])
        s.flush()
        for i, (image_id, truth) in enumerate(zip(image_ids, TRUTH, strict=True)):
            s.add(
                BatchItem(
                    batch_id=batch.id,
                    image_id=image_id,
                    item_key=f"t{image_id}",
                    position=i,
                    is_overlap=True,
                    required_annotations=2,
                )
            )
            s.add(ImageClaim(image_id=image_id, batch_id=batch.id))
            probs = [0.1, 0.1, 0.1]
            probs[CLASSES.index(truth)] = 0.8
            s.add(
                Prediction(
                    model_version_id=mv.id,
                    image_id=image_id,
                    probs=probs,
                    predicted_class=truth,
                    predicted_score=0.8,
                    least_confidence=0.2,
                    margin=0.7,
                    entropy=0.6,
                )
            )
            for name, cls in _answers(i, truth).items():
                s.add(
                    LabelVersion(
                        image_id=image_id,
                        annotator_id=names[name],
                        batch_id=batch.id,
                        payload={"class": cls},
                        source="csv",
                        source_id=f"{i}-{name}",
                        source_key=f"csv:{i}-{name}:-",
                        status="submitted",
                    )
                )
        s.flush()
        return batch.id


@pytest.fixture
def image_ids(pg_catalog: str, image_dir: Path) -> list[int]:
    ingest([str(image_dir)], transaction=session_scope)
    with session_scope() as s:
        ids = list(s.scalars(select(Image.id).where(Image.status == "ok").order_by(Image.sha256)))
    return ids[: len(TRUTH)]


def _audit(batch_id: int) -> tuple[dict[str, Any], dict[str, Any], str]:
    with session_scope() as s:
        audit = run_audit(s, AuditRequest(batch_id=batch_id, gate=0.0, resamples=0))
        metrics, json_key, html_key = audit.metrics, audit.report_json_key, audit.report_html_key
    assert json_key is not None and html_key is not None
    store = get_store()
    report = json.loads(store.get(json_key))
    return metrics, report, store.get(html_key).decode()


def test_consensus_rule_accepts_the_skill_weighted_label(image_ids: list[int]) -> None:
    metrics, report, html = _audit(_world("consensus", image_ids))
    consensus = metrics["consensus"]
    assert consensus["method"] == "crowdlab"
    assert consensus["library"].startswith("cleanlab 2.9")
    assert consensus["model"] == "net:1"
    assert (consensus["rule"], consensus["applied"]) == ("consensus", "consensus")
    assert metrics["parameters"]["policy"]["accept_rule"] == "consensus"
    assert consensus["n_items"] == len(TRUTH)
    ranked = [a["annotator"] for a in consensus["annotators"]]
    assert ranked == ["good", "fair", "poor"]
    assert all("gold_accuracy" in a for a in consensus["annotators"])
    # The agreement metrics stay.
    assert "annotators" in metrics and "summary" in metrics
    tie = next(row for row in report["items"] if row["image_id"] == image_ids[TIE])
    assert tie["consensus"]["label"] == "cat"
    assert (tie["label"], tie["disputed"], tie["outcome"]) == ({"class": "cat"}, None, "accepted")
    # Every item's accepted label is the truth; on item 4 the consensus overrules a wrong
    # majority (fair and poor both say bird).
    labels = {row["image_id"]: row["label"] for row in report["items"]}
    assert [labels[i]["class"] for i in image_ids[:SINGLE]] == TRUTH[:SINGLE]
    # A single answer the consensus overrules is disputed: a person decides.
    single = next(row for row in report["items"] if row["image_id"] == image_ids[SINGLE])
    assert single["consensus"]["label"] == "dog"
    assert (single["label"], single["outcome"]) == (None, "relabel")
    assert single["disputed"] == "consensus dog matches no answer"
    assert "Consensus (CROWDLAB)" in html and "net:1" in html
    with session_scope() as s:
        statuses = {
            (v.annotator_id, v.payload["class"]): v.status
            for v in s.scalars(select(LabelVersion).where(LabelVersion.image_id == image_ids[TIE]))
        }
    assert sorted(statuses.values()) == ["accepted", "rejected"]


def test_majority_rule_reports_consensus_but_keeps_the_vote(image_ids: list[int]) -> None:
    metrics, report, _ = _audit(_world("majority", image_ids))
    consensus = metrics["consensus"]
    assert (consensus["rule"], consensus["applied"]) == ("majority", "majority")
    assert consensus["annotators"][0]["annotator"] == "good"
    tie = next(row for row in report["items"] if row["image_id"] == image_ids[TIE])
    assert tie["consensus"]["label"] == "cat"
    assert (tie["disputed"], tie["outcome"]) == ("tie", "relabel")
    single = next(row for row in report["items"] if row["image_id"] == image_ids[SINGLE])
    assert (single["label"], single["outcome"]) == ({"class": "bird"}, "accepted")
    outvoted = next(row for row in report["items"] if row["image_id"] == image_ids[4])
    assert (outvoted["label"], outvoted["consensus"]["label"]) == ({"class": "bird"}, "dog")


def test_queue_accept_rule_over_http_and_audits_stay_staff_only(api: Any) -> None:
    from dataops.labeling import service as labeling
    from tests.support.api import bearer, create_user_token

    with session_scope() as s:
        labeling.create_vendor(s, "acme")
        s.add(
            Guideline(
                name="animals",
                version=1,
                sha256="c" * 64,
                kind="classification",
                classes=CLASSES,
                body="# guideline",
                label_config="<View/>",
            )
        )
    ops = bearer(create_user_token("labeling_ops"))
    body = {"name": "acme-crowd", "vendor": "acme", "guideline": "animals:1"}
    created = api.post("/v1/queues", json={**body, "accept_rule": "consensus"}, headers=ops)
    assert created.status_code == 201, created.text
    assert created.json()["accept_rule"] == "consensus"
    plain = api.post("/v1/queues", json={**body, "name": "acme-plain"}, headers=ops)
    assert plain.json()["accept_rule"] == "majority"
    unknown = api.post(
        "/v1/queues", json={**body, "name": "other", "accept_rule": "vote"}, headers=ops
    )
    assert unknown.status_code == 422, unknown.text
    assert "accept_rule" in unknown.text
    vendor = bearer(create_user_token("vendor", vendor="acme"))
    assert api.get("/v1/audits", headers=vendor).status_code == 403
