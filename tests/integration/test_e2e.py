"""The whole pipeline through the HTTP API, on real PostgreSQL, Redis, two Celery workers and
a real Label Studio server in which two annotator accounts label through its API.

ingest → dedup → register a model → score → vendor, guideline, queue with overlap and gold →
margin batch → push → label in Label Studio → pull → audit with a gate → manifest → verify.

Every long step answers 202 with a job that one of the two workers runs (ingest, dedup,
selection, audit and manifest on one; scoring and Label Studio sync on the other); the test
polls the job through the API. Label Studio's webhooks point at a port where nothing listens,
so annotations arrive only through the explicit pull (polling is the ground truth anyway).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from tests.support.api import bearer, create_user_token
from tests.support.labelstudio import LabelStudioInstance, free_port
from tests.support.services import CeleryWorker, service_env
from tests.support.wait import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.celery,
    pytest.mark.labelstudio,
]

CLASSES = ["T-Shirt", "Pants", "Shoes", "Dress"]
PER_CLASS = 12
POOL_PER_CLASS = 2  # vetted labels per class: the gold pool, never selected
TRANSFORMS = ["resize", "jpeg", "brightness", "text_overlay"]  # one near-duplicate per class
BATCH_SIZE = 12
OVERLAP = 0.25
GOLD = 0.25
GATE = 0.75
JOB_TIMEOUT = 120.0
TASK = "garments"  # the guideline's name is the labeling task the manifest freezes

GUIDELINE = f"""---
name: {TASK}
kind: classification
classes:
  - T-Shirt: Short-sleeved knit top without a collar or buttons.
  - Pants: Trousers, jeans or leggings whose legs reach below the knee.
  - Shoes: Any footwear, one shoe or a pair.
  - Dress: One-piece garment that covers the torso and continues into a skirt.
---

# Garment type

Choose the one class of the garment the photo is about.
"""


@dataclass
class Stack:
    api: TestClient
    scientist: dict[str, str]
    ops: dict[str, str]
    root: Path
    workers: list[CeleryWorker]

    def call(self, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> Any:
        response = self.api.request(method, path, headers=headers, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.text}"
        return response.json()

    def job(self, accepted: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        """Wait, bounded in time, for a 202's job to succeed on a worker; its result."""
        assert accepted["status_url"] == f"/v1/jobs/{accepted['job_id']}"

        def finished() -> dict[str, Any] | None:
            job: dict[str, Any] = self.call("GET", accepted["status_url"], headers)
            return job if job["status"] in ("failed", "succeeded") else None

        try:
            job = wait_until(
                finished, f"job {accepted['job_id']}", timeout=JOB_TIMEOUT, interval=0.25
            )
        except AssertionError as exc:
            pytest.fail(f"{exc}\n{self.logs()}")
        if job["status"] == "failed":
            pytest.fail(f"job {job['kind']} failed: {job['error']}\n{self.logs()}")
        assert isinstance(job["result"], dict)
        return dict(job["result"])

    def logs(self) -> str:
        return "\n".join(
            f"--- {w.name}\n{w.log.read_text(errors='replace')[-3000:]}" for w in self.workers
        )


@pytest.fixture
def stack(
    pg_catalog: str,
    redis_url: str,
    labelstudio: LabelStudioInstance,
    isolated_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stack]:
    from dataops.api.app import create_app
    from dataops.config import reset_settings
    from dataops.storage import get_store

    root = tmp_path / "incoming"
    root.mkdir()
    settings = {
        "DATAOPS_DATABASE_URL": pg_catalog,
        "DATAOPS_BROKER_URL": redis_url,
        "DATAOPS_DATA_DIR": str(isolated_env),
        "DATAOPS_API__INGEST_ROOTS": json.dumps([str(root)]),
        "DATAOPS_LABELSTUDIO_URL": labelstudio.url,
        "DATAOPS_LABELSTUDIO_TOKEN": labelstudio.admin_token,
        "DATAOPS_PUBLIC_URL": f"http://127.0.0.1:{free_port()}",
        "DATAOPS_SECRET_KEY": "e2e-signing-key",
        "DATAOPS_INGEST__WORKERS": "1",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    get_store.cache_clear()
    workers = [
        CeleryWorker(service_env(), "ingest,dedup,manifest,audit", name="e2e-catalog"),
        CeleryWorker(service_env(), "score,sync", name="e2e-models"),
    ]
    try:
        with ThreadPoolExecutor(len(workers)) as pool:
            list(pool.map(lambda w: w.start(), workers))
        with TestClient(create_app()) as client:
            yield Stack(
                api=client,
                scientist=bearer(create_user_token("scientist", name="sam")),
                ops=bearer(create_user_token("labeling_ops", name="olga")),
                root=root,
                workers=workers,
            )
    finally:
        for worker in workers:
            worker.stop()


def _corpus_picks(corpus: Path) -> dict[str, list[str]]:
    """The first PER_CLASS labelled photos of each class, by file name."""
    picks: dict[str, list[str]] = {c: [] for c in CLASSES}
    with (corpus / "clothing-dataset-labels.csv").open(newline="") as fh:
        for row in sorted(csv.DictReader(fh), key=lambda r: r["file"]):
            wanted = picks.get(row["label"])
            if wanted is not None and len(wanted) < PER_CLASS:
                wanted.append(row["file"])
    assert all(len(files) == PER_CLASS for files in picks.values())
    return picks


def _write_images(corpus: Path, root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Copy the photos and a near-duplicate of one per class: (label by file, original by copy)."""
    from dataops.dedup import transforms

    rng = np.random.default_rng(7)
    truth: dict[str, str] = {}
    copies: dict[str, str] = {}
    picks = _corpus_picks(corpus)
    for label, files in picks.items():
        for name in files:
            shutil.copy(corpus / "clothing-dataset" / name, root / name)
            truth[name] = label
    for label, transform in zip(CLASSES, TRANSFORMS, strict=True):
        original = picks[label][0]
        with PILImage.open(root / original) as img:
            edited = getattr(transforms, transform)(img, rng)
        name = f"{transform}-{original}"
        edited.save(root / name, format="JPEG", quality=90)
        truth[name] = label
        copies[name] = original
    return truth, copies


def _train_model(root: Path, names: list[str], truth: dict[str, str], path: Path) -> Path:
    """A tiny CNN trained briefly on the photos: uncertain enough for margin sampling."""
    from dataops.scoring import tinycnn

    images = []
    for name in names:
        with PILImage.open(root / name) as img:
            images.append(img.convert("RGB"))
    labels = [CLASSES.index(truth[n]) for n in names]
    model = tinycnn.train(images, labels, num_classes=len(CLASSES), epochs=4, seed=3)
    path.parent.mkdir(parents=True, exist_ok=True)
    tinycnn.export_torchscript(model, path, tinycnn.DEFAULT_SPEC)
    return path


def _import_vetted(stack: Stack, root: Path, names: list[str], truth: dict[str, str]) -> None:
    """Labels vetted elsewhere, imported as accepted: the pool gold items are drawn from."""
    rows = "".join(f"{root / name},curator,{truth[name]}\n" for name in names)
    body = {
        "format": "csv",
        "content": "image,annotator,label\n" + rows,
        "accept": True,
        "guideline": TASK,
    }
    report = stack.call("POST", "/v1/labels/import", stack.ops, json=body)
    assert (report["rows"], report["created"], report["errors"]) == (len(names), len(names), [])


def _relabel_round(
    stack: Stack, url: str, batch_id: int, tokens: list[str], answers: list[str]
) -> dict[str, Any]:
    """Push a relabel batch, let each account label what Label Studio's labeling stream hands
    it (``answers[i]`` from account i), pull, audit; the audit with its metrics."""
    from tests.support.labelstudio import label_stream

    ops = stack.ops
    batch = stack.call("GET", f"/v1/batches/{batch_id}", ops)
    assert (batch["purpose"], batch["status"]) == ("relabel", "draft")
    pushed = stack.job(stack.call("POST", f"/v1/batches/{batch_id}/push", ops), ops)
    assert pushed["status"] == "sent"
    tasks = stack.call("GET", "/v1/queues/acme-garments/tasks", ops, params={"batch": batch_id})
    task_ids = sorted(t["ls_task_id"] for t in tasks["tasks"])
    project = stack.call("GET", "/v1/queues/acme-garments", ops)["ls_project_id"]
    # Each relabel task is offered to exactly as many accounts as answers it asks for.
    offered = [
        label_stream(url, token, project, lambda _task, given=given: given)
        for token, given in zip(tokens, answers, strict=True)
    ]
    assert [sorted(o) for o in offered] == [task_ids] * len(tokens)
    pulled = stack.job(stack.call("POST", "/v1/queues/acme-garments/pull", ops), ops)
    assert pulled["created"] == len(task_ids) * len(tokens), pulled
    result = stack.job(
        stack.call("POST", "/v1/audits", ops, json={"batch_id": batch_id, "gate": GATE}), ops
    )
    return dict(stack.call("GET", f"/v1/audits/{result['id']}", ops))


def test_ingest_to_verified_manifest(
    stack: Stack, corpus: Path, labelstudio: LabelStudioInstance, tmp_path: Path
) -> None:
    from sklearn.metrics import cohen_kappa_score
    from sqlalchemy import select

    from dataops.db import session_scope
    from dataops.labelstudio.client import LabelStudioClient, prediction_result
    from dataops.selection.models import BatchItem

    sci, ops = stack.scientist, stack.ops
    truth, copies = _write_images(corpus, stack.root)

    # Ingest.
    job = stack.job(stack.call("POST", "/v1/ingest", sci, json={"paths": [str(stack.root)]}), sci)
    assert (job["files"], job["new"], job["quarantined"]) == (len(truth), len(truth), 0)
    images = stack.call("GET", "/v1/images", sci, params={"limit": 1000})["images"]
    id_of = {Path(image["uri"]).name: image["id"] for image in images}
    assert set(id_of) == set(truth)
    label_of = {id_of[name]: label for name, label in truth.items()}
    sha_of = {image["id"]: image["sha256"] for image in images}

    # Dedup: every edited copy lands in its original's group.
    run = stack.job(stack.call("POST", "/v1/dedup/run", sci, json={}), sci)
    assert run["images"] == run["new_images"] == len(truth)
    assert run["pairs"] >= len(copies)
    groups = stack.call("GET", "/v1/dedup/groups", sci, params={"limit": 1000})["groups"]
    group_of = {m["image_id"]: g["id"] for g in groups for m in g["members"]}
    for copy, original in copies.items():
        assert id_of[copy] in group_of, f"{copy} is in no duplicate group"
        assert group_of[id_of[copy]] == group_of.get(id_of[original]), copy

    # Register a model trained here; only files inside the ingest roots are accepted.
    originals = [name for name in sorted(truth) if name not in copies]
    model_file = _train_model(stack.root, originals, truth, stack.root / "models" / "garments.pt")
    body = {"name": "garments", "classes": CLASSES, "path": str(model_file)}
    registered = stack.api.post("/v1/models", json=body, headers=sci)
    assert registered.status_code == 201, registered.text
    assert registered.json()["ref"] == "garments:1"
    assert registered.json()["has_embedding"] is True
    again = stack.api.post("/v1/models", json=body, headers=sci)
    assert (again.status_code, again.json()["created"]) == (200, False)
    outside = shutil.copy(model_file, tmp_path / "outside.pt")
    refused = stack.api.post("/v1/models", json={**body, "path": str(outside)}, headers=sci)
    assert refused.status_code == 403, refused.text
    huge = {"size": [65536, 65536], "mean": [0.5] * 3, "std": [0.25] * 3}
    too_big = stack.api.post("/v1/models", json={**body, "input_spec": huge}, headers=sci)
    assert too_big.status_code == 422, too_big.text

    # Score every image.
    scored = stack.job(
        stack.call("POST", "/v1/models/garments/score", sci, json={"workers": 0}), sci
    )
    assert scored["scored"] == len(truth), scored
    [listed] = stack.call("GET", "/v1/models", sci, params={"name": "garments"})["models"]
    assert listed["predictions"] == len(truth)

    # Vendor, guideline, a pool of vetted labels for gold, and a queue with overlap and gold.
    singles = [name for name in originals if name not in copies.values()]
    pool = [
        name
        for label in CLASSES
        for name in [n for n in singles if truth[n] == label][-POOL_PER_CLASS:]
    ]
    assert stack.call("POST", "/v1/vendors", ops, json={"name": "acme"})["created"] is True
    guideline = stack.call(
        "POST", "/v1/guidelines", ops, json={"name": TASK, "markdown": GUIDELINE}
    )
    assert (guideline["version"], guideline["classes"]) == (1, CLASSES)
    _import_vetted(stack, stack.root, pool, truth)
    queue_body = {
        "name": "acme-garments",
        "vendor": "acme",
        "guideline": f"{TASK}:1",
        "overlap": OVERLAP,
        "gold": GOLD,
        "due": "3d",
    }
    queue = stack.call("POST", "/v1/queues", ops, json=queue_body)
    assert queue["created"] is True

    # A margin batch for the queue: no vetted image and at most one image per duplicate group.
    selected = stack.job(
        stack.call(
            "POST",
            "/v1/batches",
            sci,
            json={
                "strategy": "margin",
                "size": BATCH_SIZE,
                "model": "garments",
                "queue": "acme-garments",
                "seed": 7,
            },
        ),
        sci,
    )
    batch_id = selected["id"]
    batch = stack.call("GET", f"/v1/batches/{batch_id}", sci)
    picked = [item["image_id"] for item in batch["items"]]
    assert (batch["status"], batch["strategy"], len(picked)) == ("draft", "margin", BATCH_SIZE)
    assert not {id_of[n] for n in pool} & set(picked)
    in_groups = [group_of[i] for i in picked if i in group_of]
    assert len(in_groups) == len(set(in_groups))
    assert all(item["score"] is not None for item in batch["items"])

    # Push to Label Studio: overlap and gold items are planned by dataops.
    pushed = stack.job(stack.call("POST", f"/v1/batches/{batch_id}/push", ops), ops)
    n_overlap, n_gold = pushed["overlap_items"], pushed["gold_items"]
    assert pushed["status"] == "sent"
    assert n_gold == round(BATCH_SIZE * GOLD)
    # Overlap is drawn from regular and gold items alike.
    assert n_overlap == round((BATCH_SIZE + n_gold) * OVERLAP)
    assert pushed["tasks"] == BATCH_SIZE + n_gold
    tasks = stack.call("GET", "/v1/queues/acme-garments/tasks", ops, params={"batch": batch_id})[
        "tasks"
    ]
    assert len(tasks) == pushed["tasks"]
    assert all(t["ls_task_id"] is not None and t["status"] == "sent" for t in tasks)
    # What an annotator's browser loads: the signed URL needs no token.
    media = stack.api.get(urlsplit(tasks[0]["media_url"])._replace(scheme="", netloc="").geturl())
    assert (media.status_code, media.headers["content-type"]) == (200, "image/jpeg")
    # Which items are overlap or gold is never shown to a vendor; the test reads the catalog.
    with session_scope() as session:
        flags = {
            item.id: (item.is_overlap, item.is_gold)
            for item in session.scalars(select(BatchItem).where(BatchItem.batch_id == batch_id))
        }
    overlap = sorted(t["ls_task_id"] for t in tasks if flags[t["item_id"]][0])
    gold = {t["image_id"] for t in tasks if flags[t["item_id"]][1]}
    gold_tasks = {t["ls_task_id"] for t in tasks if flags[t["item_id"]][1]}
    assert (len(overlap), len(gold)) == (n_overlap, n_gold)
    assert gold <= {id_of[n] for n in pool}
    n_audited = len(set(overlap) | gold_tasks)

    # The vendor's view tells gold from regular work by nothing it can read: every task has the
    # same fields and one key format, no catalog identity, gold mixed into the push order, and
    # no gold or overlap shares (test_gold_secrecy.py measures this over three batches).
    vendor = bearer(create_user_token("vendor", vendor="acme"))
    seen = stack.call("GET", "/v1/queues/acme-garments/tasks", vendor)["tasks"]
    assert {t["key"] for t in seen} == {t["key"] for t in tasks}
    assert {frozenset(t) for t in seen} == {
        frozenset({"key", "status", "ls_task_id", "pushed_at", "media_url", "media_expires_at"})
    }
    assert all(re.fullmatch(r"[0-9a-f]{32}", t["key"]) for t in seen)
    ids = {str(t["image_id"]) for t in tasks} | {t["sha256"] for t in tasks} | {str(batch_id)}
    assert not any(set(urlsplit(t["media_url"]).path.split("/")) & ids for t in seen)
    gold_keys = {t["key"] for t in tasks if flags[t["item_id"]][1]}
    last = {t["key"] for t in seen[-len(gold_keys) :]}
    assert last != gold_keys
    shown = stack.call("GET", "/v1/queues/acme-garments", vendor)
    assert (shown["gold"], shown["overlap"]) == (None, None)

    # Two annotators label through Label Studio's API: the first everything, the second the
    # overlap items, agreeing on all but one regular item.
    disputed_task = next(t for t in overlap if t not in gold_tasks)
    answers: dict[int, dict[int, str]] = {0: {}, 1: {}}
    clients = [LabelStudioClient.connect(labelstudio.url, t) for t in labelstudio.annotator_tokens]
    try:
        for task in tasks:
            truth_label = label_of[task["image_id"]]
            answers[0][task["ls_task_id"]] = truth_label
            if task["ls_task_id"] in overlap:
                other = CLASSES[(CLASSES.index(truth_label) + 1) % len(CLASSES)]
                answers[1][task["ls_task_id"]] = (
                    other if task["ls_task_id"] == disputed_task else truth_label
                )
        for client, given in zip(clients, answers.values(), strict=True):
            for task_id, label in given.items():
                client.create_annotation(task_id, prediction_result("classification", label=label))
        emails = [client.whoami()["email"] for client in clients]
    finally:
        for client in clients:
            client.close()

    # Pull: one label version per annotation, attributed to the two annotators.
    pulled = stack.job(stack.call("POST", "/v1/queues/acme-garments/pull", ops), ops)
    n_answers = len(answers[0]) + len(answers[1])
    assert pulled["created"] == n_answers, pulled
    labels = stack.call("GET", "/v1/labels", ops, params={"batch": batch_id})
    assert len(labels) == n_answers
    assert all(v["status"] == "submitted" and v["task"] == TASK for v in labels)
    annotated: dict[int, set[str]] = {}
    for version in labels:
        annotated.setdefault(version["image_id"], set()).add(version["annotator"])
    assert annotated == {
        t["image_id"]: set(emails) if t["ls_task_id"] in overlap else {emails[0]} for t in tasks
    }
    assert stack.call("GET", f"/v1/batches/{batch_id}", ops)["status"] == "delivered"

    # Audit against the gate: overlap items pass when unanimous, gold items when right.
    expected_rate = (n_audited - 1) / n_audited
    assert expected_rate >= GATE
    result = stack.job(
        stack.call("POST", "/v1/audits", ops, json={"batch_id": batch_id, "gate": GATE}), ops
    )
    audit = stack.call("GET", f"/v1/audits/{result['id']}", ops)
    assert audit["decision"] == "accepted"
    assert audit["pass_rate"] == pytest.approx(expected_rate)
    assert (audit["n_items"], audit["n_passed"], audit["n_disputed"]) == (
        n_audited,
        n_audited - 1,
        1,
    )
    assert audit["relabel_batch_id"] is not None
    summary = audit["metrics"]["summary"]
    assert summary["percent_agreement"] == pytest.approx((n_overlap - 1) / n_overlap)
    pairs = [(answers[0][t], answers[1][t]) for t in overlap]
    kappa = cohen_kappa_score([a for a, _ in pairs], [b for _, b in pairs])
    assert summary["cohen_kappa"] == pytest.approx(kappa)

    # The audit accepted every answer except the disputed item's.
    disputed_image = next(t["image_id"] for t in tasks if t["ls_task_id"] == disputed_task)
    accepted = stack.call(
        "GET", "/v1/labels", ops, params={"batch": batch_id, "status": "accepted"}
    )
    assert {v["image_id"] for v in accepted} == {t["image_id"] for t in tasks} - {disputed_image}
    assert all(v["payload"]["class"] == label_of[v["image_id"]] for v in accepted)

    # Relabel rounds with a third annotator account: round 2 asks three answers of the disputed
    # item and they split three ways (no 2-of-3 majority), so the round is rejected and the
    # queue's default policy relabels the item once more; in round 3 two of three agree.
    third = labelstudio.server.create_user(f"annotator3-{uuid.uuid4().hex[:8]}@dataops.test")
    tokens = [*labelstudio.annotator_tokens, third]
    right = label_of[disputed_image]
    wrong = [c for c in CLASSES if c != right]
    round2 = _relabel_round(
        stack,
        labelstudio.url,
        audit["relabel_batch_id"],
        tokens,
        [
            right,
            wrong[0],
            wrong[1],
        ],
    )
    assert (round2["decision"], round2["pass_rate"]) == ("rejected", 0.0)
    assert round2["metrics"]["parameters"]["quorum"] == 2
    assert round2["metrics"]["outcome"]["items"]["relabel"] == 1
    round3 = _relabel_round(
        stack,
        labelstudio.url,
        round2["relabel_batch_id"],
        tokens,
        [
            right,
            wrong[0],
            right,
        ],
    )
    assert (round3["decision"], round3["relabel_batch_id"]) == ("accepted", None)
    assert round3["metrics"]["outcome"]["relabel_rule"] == "2 of 3 matching answers"
    html = stack.api.get(f"/v1/audits/{round3['id']}/report.html", headers=ops)
    assert html.status_code == 200, html.text
    assert "2 of 3 matching answers" in html.text
    relabeled = stack.call(
        "GET",
        "/v1/labels",
        ops,
        params={"batch": round3["batch_id"], "status": "accepted"},
    )
    assert [(v["image_id"], v["payload"]["class"]) for v in relabeled] == [
        (disputed_image, right),
        (disputed_image, right),
    ]
    # Every item of the first batch ends accepted; earlier rounds' answers are kept, released.
    for batch in (batch_id, audit["relabel_batch_id"]):
        kept = stack.call("GET", "/v1/labels", ops, params={"batch": batch, "status": "released"})
        assert {v["image_id"] for v in kept} == {disputed_image}
    accepted.append(relabeled[0])

    # Steering batches over HTTP: a selection without a queue is a draft nobody can push; it
    # gets a queue with assign, is pushed, one task is labeled, and it is cancelled: its
    # images are released, the unlabeled tasks leave Label Studio, the label made is kept.
    steered = stack.job(
        stack.call("POST", "/v1/batches", sci, json={"strategy": "random", "size": 4, "seed": 11}),
        sci,
    )
    steered_id = steered["id"]
    draft = stack.call("GET", f"/v1/batches/{steered_id}", sci)
    assert (draft["status"], draft["queue"]) == ("draft", None)
    assigned = stack.call(
        "POST", f"/v1/batches/{steered_id}/assign", sci, json={"queue": "acme-garments"}
    )
    assert (assigned["status"], assigned["queue"], assigned["task"]) == (
        "draft",
        "acme-garments",
        TASK,
    )
    assert (assigned["size"], assigned["dropped"]) == (4, [])
    pushed = stack.job(stack.call("POST", f"/v1/batches/{steered_id}/push", ops), ops)
    assert pushed["status"] == "sent"
    steered_tasks = stack.call(
        "GET", "/v1/queues/acme-garments/tasks", ops, params={"batch": steered_id}
    )["tasks"]
    labeled_task = steered_tasks[0]
    with LabelStudioClient.connect(labelstudio.url, labelstudio.annotator_tokens[0]) as client:
        client.create_annotation(
            labeled_task["ls_task_id"],
            prediction_result("classification", label=label_of[labeled_task["image_id"]]),
        )
    project = stack.call("GET", "/v1/queues/acme-garments", ops)["ls_project_id"]
    with LabelStudioClient.connect(labelstudio.url, labelstudio.admin_token) as admin:
        before = {t["id"] for t in admin.list_tasks(project)}
        refused = stack.api.post(f"/v1/batches/{steered_id}/cancel", headers=sci, json={})
        assert refused.status_code == 403, refused.text  # a sent batch is labeling ops' call
        cancelled = stack.call(
            "POST", f"/v1/batches/{steered_id}/cancel", ops, json={"reason": "e2e"}
        )
        after = {t["id"] for t in admin.list_tasks(project)}
    assert cancelled["status"] == "cancelled"
    assert cancelled["released"] == 4  # the selected images; gold items are never claimed
    assert (cancelled["removed_tasks"], cancelled["kept_tasks"]) == (len(steered_tasks) - 1, 1)
    assert before - after == {t["ls_task_id"] for t in steered_tasks} - {labeled_task["ls_task_id"]}
    assert cancelled["pull_job_id"] is not None
    stack.job(
        {"job_id": cancelled["pull_job_id"], "status_url": f"/v1/jobs/{cancelled['pull_job_id']}"},
        ops,
    )
    kept = stack.call("GET", "/v1/labels", ops, params={"batch": steered_id})
    assert [v["image_id"] for v in kept] == [labeled_task["image_id"]]
    again = stack.call("POST", f"/v1/batches/{steered_id}/cancel", ops, json={})
    assert again["status"] == "cancelled"

    # Freeze the accepted labels into a manifest and verify it.
    made = stack.job(
        stack.call(
            "POST",
            "/v1/manifests",
            sci,
            json={"name": "garments-v1", "seed": 1, "splits": "train=0.8,val=0.2", "task": TASK},
        ),
        sci,
    )
    manifest = stack.call("GET", "/v1/manifests/garments-v1", sci)
    frozen = {id_of[n] for n in pool} | {v["image_id"] for v in accepted}
    assert disputed_image in frozen
    expected_rows = len(frozen)
    assert (made["rows"], manifest["row_count"]) == (expected_rows, expected_rows)
    assert manifest["id"] == made["id"]
    assert {row["sha256"]: row["label"]["class"] for row in manifest["rows"]} == {
        sha_of[i]: label_of[i] for i in frozen
    }
    assert {row["split"] for row in manifest["rows"]} <= {"train", "val"}
    verified = stack.call("POST", "/v1/manifests/garments-v1/verify", sci)
    assert verified["ok"] is True, verified["problems"]
    assert verified["images_checked"] == expected_rows
