"""A vendor cannot tell gold from regular work by anything it can read.

The slow test plays the vendor over three pushed batches against a real Label Studio: it reads
every task as an annotator account (ids, order, data, URLs, predictions, overlap, timestamps),
the queue views and task listing through the API with a vendor token, and the image bytes
behind every media URL (to spot an image shown before). A gradient-boosting classifier on
features of all of that, cross-validated, must not separate gold from regular (AUC <= 0.6),
while the same classifier on the task shape dataops used to push (readable item keys for
regular items, hex keys and last positions for gold, sha256 and batch id in the data, image
ids in URLs, model scores) separates them almost perfectly.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from dataops.db import session_scope, utcnow
from tests.support import vendor_world
from tests.support.api import bearer, create_user_token
from tests.support.labelstudio import LabelStudioInstance

BATCHES = 3
REGULAR = 72
OVERLAP = 0.2
GOLD = 0.2
POOL = 50
MAX_AUC = 0.6


# --- the gold window (no Label Studio) ------------------------------------------------------


def _plan(batch_id: int) -> dict[str, int]:
    from dataops.labeling.models import Guideline, Queue
    from dataops.labelstudio.review import plan_review_items
    from dataops.selection.models import Batch

    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None and batch.queue_id is not None
        queue = session.get(Queue, batch.queue_id)
        assert queue is not None
        guideline = session.get(Guideline, queue.guideline_id)
        assert guideline is not None
        return plan_review_items(session, batch, guideline)


def _gold_of(batch_id: int, *, shown: bool = True) -> set[int]:
    """The batch's gold images; `shown` marks every item as pushed, as a push would."""
    from dataops.selection.models import BatchItem

    with session_scope() as session:
        items = list(session.scalars(select(BatchItem).where(BatchItem.batch_id == batch_id)))
        if shown:
            for item in items:
                item.pushed_at = utcnow()
        return {item.image_id for item in items if item.is_gold}


def test_a_gold_image_is_not_shown_twice_to_a_vendor_within_the_window(
    catalog: str, tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataops.config import reset_settings
    from dataops.labeling import service as labeling

    images = vendor_world.copy_clothing(corpus, tmp_path / "images", 20)
    world = vendor_world.build(images, overlap=0.0, gold=0.5, gold_pool=3)
    free = iter(world.unlabelled)

    def batch(queue_id: int = world.queue_id) -> int:
        at = vendor_world.VendorWorld(queue_id, world.model_id, world.vendor, [], [])
        return vendor_world.add_batch(
            at, [next(free) for _ in range(4)], seed=1, overlap=0.0, gold=0.5
        )

    first = batch()
    assert _plan(first)["gold_items"] == 2
    shown = _gold_of(first)
    # Only one pool image is left that this vendor has not seen.
    second = batch()
    assert _plan(second) == {"overlap_items": 0, "gold_items": 1, "gold_missing": 1}
    again = _gold_of(second)
    assert again and not again & shown

    # Another vendor has seen none of them.
    with session_scope() as session:
        labeling.create_vendor(session, "globex")
        other, _ = labeling.create_queue(
            session, "globex-garments", vendor="globex", guideline="garments:1", gold=0.5
        )
        other_queue = other.id
    assert _plan(batch(other_queue))["gold_items"] == 2

    # The window is a setting: with none, the pool is reused.
    monkeypatch.setenv("DATAOPS_GOLD_REPEAT_DAYS", "0")
    reset_settings()
    assert _plan(batch())["gold_items"] == 2


def test_gold_pre_annotations_follow_the_regular_items_classes(
    catalog: str, tmp_path: Path, corpus: Path
) -> None:
    """An uncertainty batch leans to some predicted classes; gold drawn blind would not."""
    from dataops.scoring.models import Prediction
    from dataops.selection.models import BatchItem

    images = vendor_world.copy_clothing(corpus, tmp_path / "images", 20)
    world = vendor_world.build(images, overlap=0.0, gold=0.5, gold_pool=12)
    regular = world.unlabelled[:8]
    shoes = set(world.gold_pool[:5])
    with session_scope() as session:
        for prediction in session.scalars(select(Prediction)):
            is_shoe = prediction.image_id in shoes or prediction.image_id in regular
            prediction.predicted_class = "Shoes" if is_shoe else "Pants"
    batch = vendor_world.add_batch(world, regular, seed=5, overlap=0.0, gold=0.5)
    assert _plan(batch)["gold_items"] == 4
    with session_scope() as session:
        gold = set(
            session.scalars(
                select(BatchItem.image_id).where(BatchItem.batch_id == batch, BatchItem.is_gold)
            )
        )
    assert gold <= shoes


def test_tasks_pushed_before_task_keys_keep_their_item_key(
    pg_catalog: str, tmp_path: Path, corpus: Path
) -> None:
    """The migration records a key for every task already in Label Studio: its item key."""
    from dataops import migrate
    from dataops.labeling.models import TaskKey
    from dataops.selection.models import BatchItem

    images = vendor_world.copy_clothing(corpus, tmp_path / "images", 6)
    world = vendor_world.build(images, overlap=0.0, gold=0.0, gold_pool=0)
    batch = vendor_world.add_batch(world, world.unlabelled[:4], seed=1, overlap=0.0, gold=0.0)
    with session_scope() as session:
        items = list(session.scalars(select(BatchItem).where(BatchItem.batch_id == batch)))
        for n, item in enumerate(items[:3]):
            item.ls_task_id = 100 + n
            item.pushed_at = utcnow()
        pushed = {item.item_key: item.id for item in items[:3]}
    migrate.downgrade(pg_catalog, "0005")
    migrate.upgrade(pg_catalog)
    with session_scope() as session:
        keys = {k.key: (k.batch_item_id, k.queue_id) for k in session.scalars(select(TaskKey))}
    assert keys == {key: (item_id, world.queue_id) for key, item_id in pushed.items()}


# --- the vendor's view over three batches (real Label Studio) ------------------------------


@pytest.fixture
def api(pg_catalog: str) -> Iterator[TestClient]:
    from dataops.api.app import create_app

    with TestClient(create_app()) as client:
        yield client


def _stamp(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", value):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _flatten(prefix: str, value: Any, out: dict[str, float], strings: dict[str, str]) -> None:
    """Every readable value as numbers: numbers as they are, times, lengths, hex-ness, shapes."""
    if isinstance(value, bool | int | float):
        out[prefix] = float(value)
    elif value is None:
        out[prefix + ":none"] = 1.0
    elif isinstance(value, dict):
        out[prefix + ":keys"] = float(len(value))
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, out, strings)
    elif isinstance(value, list):
        out[prefix + ":len"] = float(len(value))
        for n, inner in enumerate(value[:3]):
            _flatten(f"{prefix}[{n}]", inner, out, strings)
    else:
        text = str(value)
        stamp = _stamp(value)
        if stamp is not None:
            out[prefix + ":time"] = stamp
            return
        strings[prefix] = text
        out[prefix + ":len"] = float(len(text))
        out[prefix + ":hex"] = float(bool(re.fullmatch(r"[0-9a-f]+", text)))
        out[prefix + ":digits"] = float(sum(c.isdigit() for c in text))
        out[prefix + ":value"] = (
            float(int(text[:8], 16)) if re.fullmatch(r"[0-9a-f]{8,}", text) else -1.0
        )
        if "://" in text or text.startswith("/"):
            url = urlsplit(text)
            out[prefix + ":segments"] = float(url.path.count("/"))
            out[prefix + ":numeric_segment"] = float(
                any(part.isdigit() for part in url.path.split("/"))
            )
            for name, param in parse_qsl(url.query):
                _flatten(f"{prefix}?{name}", int(param) if param.isdigit() else param, out, {})


def _features(records: list[dict[str, Any]], groups: list[int]) -> tuple[list[str], Any]:
    """A feature matrix over every record; times and ids also relative to their batch."""
    import numpy as np

    rows: list[dict[str, float]] = []
    for record in records:
        values: dict[str, float] = {}
        _flatten("t", record, values, {})
        rows.append(values)
    names = sorted({name for row in rows for name in row})
    matrix = np.array([[row.get(name, -1.0) for name in names] for row in rows], dtype=float)
    relative = []
    group = np.array(groups)
    for column in range(matrix.shape[1]):
        shifted = matrix[:, column].copy()
        ranked = matrix[:, column].copy()
        for batch in set(groups):
            mask = group == batch
            shifted[mask] -= shifted[mask].min()
            order = matrix[mask, column].argsort(kind="stable").argsort(kind="stable")
            ranked[mask] = order / max(1, mask.sum() - 1)
        relative.extend([shifted, ranked])
    names = names + [f"{n}{suffix}" for n in names for suffix in (":in_batch", ":rank")]
    return names, np.column_stack([matrix, *relative])


def _cv_auc(matrix: Any, labels: list[bool]) -> float:
    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = np.array(labels, dtype=int)
    scores = []
    for repeat in range(3):
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=repeat)
        model = GradientBoostingClassifier(random_state=repeat, n_estimators=100, max_depth=3)
        proba = cross_val_predict(model, matrix, y, cv=folds, method="predict_proba")[:, 1]
        scores.append(roc_auc_score(y, proba))
    return float(np.mean(scores))


def _univariate(names: list[str], matrix: Any, labels: list[bool]) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    out = {}
    for column, name in enumerate(names):
        values = matrix[:, column]
        if values.min() == values.max():
            continue
        auc = roc_auc_score(labels, values)
        out[name] = max(auc, 1 - auc)
    return out


def _old_shape(truth: dict[str, Any], listing_rank: int, batch_rank: int) -> dict[str, Any]:
    """The task a vendor used to read for the same item (the shape dataops pushed before)."""
    item = truth["item"]
    key = (
        hashlib.sha256(f"dataops-item:{item['batch_id']}:{item['image_id']}".encode()).hexdigest()
        if item["is_gold"]
        else f"b{item['batch_id']}-i{item['image_id']}"
    )
    query = f"queue={truth['queue_id']}&exp={truth['exp']}&sig={'x' * 43}"
    return {
        "id": batch_rank,
        "position": listing_rank,
        "data": {
            "image": f"http://127.0.0.1:8000/v1/media/{item['image_id']}?{query}",
            "dataops_item": key,
            "dataops_sha256": truth["sha256"],
            "dataops_batch": item["batch_id"],
        },
        "predictions": [{"model_version": "clf:v1", "score": truth["score"]}],
        "overlap": 2,
    }


@pytest.mark.labelstudio
@pytest.mark.slow
def test_a_vendor_cannot_tell_gold_from_regular_work(
    api: TestClient,
    tmp_path: Path,
    corpus: Path,
    labelstudio: LabelStudioInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataops.catalog.models import Image
    from dataops.labeling.models import TaskKey
    from dataops.labelstudio.client import LabelStudioClient
    from dataops.scoring.models import Prediction
    from dataops.selection.models import BatchItem

    vendor_world.use_labelstudio(monkeypatch, labelstudio.url, labelstudio.admin_token)
    images = vendor_world.copy_clothing(corpus, tmp_path / "images", BATCHES * REGULAR + POOL)
    world = vendor_world.build(images, overlap=OVERLAP, gold=GOLD, gold_pool=POOL)
    projects = set()
    for n in range(BATCHES):
        chosen = world.unlabelled[n * REGULAR : (n + 1) * REGULAR]
        batch_id = vendor_world.add_batch(world, chosen, seed=11 + n, overlap=OVERLAP, gold=GOLD)
        projects.add(vendor_world.push(batch_id, page_size=25)["ls_project_id"])
    [project] = projects

    # Everything the vendor reads: Label Studio as an annotator account...
    with LabelStudioClient(labelstudio.url, labelstudio.annotator_tokens[0]) as annotator:
        ls_tasks = {t["data"]["dataops_item"]: t for t in annotator.list_tasks(project)}
    # ...and dataops with a vendor token.
    vendor = bearer(create_user_token("vendor", vendor=world.vendor))
    queues = api.get("/v1/queues", headers=vendor).json()
    queue_view = api.get(f"/v1/queues/{world.queue_id}", headers=vendor).json()
    listing = api.get(
        f"/v1/queues/{world.queue_id}/tasks", params={"limit": 5000}, headers=vendor
    ).json()["tasks"]
    assert [q["id"] for q in queues] == [world.queue_id]
    for view in (*queues, queue_view):
        assert (view["gold"], view["overlap"]) == (None, None)
    assert len(listing) == len(ls_tasks) >= 200

    # What dataops knows (never shown to the vendor).
    with session_scope() as session:
        truth_rows = session.execute(
            select(TaskKey.key, BatchItem, Image.sha256, Prediction.predicted_score)
            .join(BatchItem, BatchItem.id == TaskKey.batch_item_id)
            .join(Image, Image.id == TaskKey.image_id)
            .join(
                Prediction,
                (Prediction.image_id == TaskKey.image_id)
                & (Prediction.model_version_id == world.model_id),
            )
            .where(TaskKey.queue_id == world.queue_id)
        ).all()
        truth = {
            key: {
                "item": {
                    "batch_id": item.batch_id,
                    "image_id": item.image_id,
                    "is_gold": item.is_gold,
                    "position": item.position,
                },
                "sha256": sha,
                "score": score,
                "queue_id": world.queue_id,
            }
            for key, item, sha, score in truth_rows
        }
        catalog_shas = set(session.scalars(select(Image.sha256)))
    assert set(truth) == set(ls_tasks) == {task["key"] for task in listing}
    gold = {key for key, t in truth.items() if t["item"]["is_gold"]}
    assert len(gold) >= BATCHES * math.floor(GOLD * REGULAR + 0.5)

    # Nothing names a catalog image, a batch, or gold.
    readable = json.dumps([list(ls_tasks.values()), listing, queues], default=str)
    assert not any(sha in readable for sha in catalog_shas)
    assert not re.search(r"/v1/media/\d", readable)
    for key, task in ls_tasks.items():
        assert set(task["data"]) == {"image", "dataops_item"}
        assert re.fullmatch(r"[0-9a-f]{32}", key)
        assert "gold" not in json.dumps([task["data"], task.get("meta")]).lower()
        assert all(p.get("score") is None for p in task["predictions"])

    # The image bytes behind each URL: an image shown before would be a tell.
    seen: Counter[str] = Counter()
    records, groups, labels, old_records = [], [], [], []
    by_batch: dict[int, list[str]] = {}
    for task in listing:
        by_batch.setdefault(truth[task["key"]]["item"]["batch_id"], []).append(task["key"])
    rank = {key: n for keys in by_batch.values() for n, key in enumerate(keys)}
    for position, task in enumerate(listing):
        key = task["key"]
        url = urlsplit(task["media_url"])
        served = api.get(f"{url.path}?{url.query}")
        assert served.status_code == 200
        digest = hashlib.sha256(served.content).hexdigest()
        repeats = seen[digest]
        seen[digest] += 1
        item = truth[key]["item"]
        records.append(
            {
                "listing": {**task, "position": position},
                "task": ls_tasks[key],
                "image": {"shown_before": repeats, "bytes": len(served.content)},
            }
        )
        groups.append(item["batch_id"])
        labels.append(item["is_gold"])
        exp = dict(parse_qsl(url.query))["exp"]
        old = _old_shape({**truth[key], "exp": exp}, position, item["position"])
        old_records.append(old)
    assert max(seen.values()) == 1, "an image was shown to the vendor twice"

    # Gold is spread through each push, not at the end.
    for keys in by_batch.values():
        spots = [n / (len(keys) - 1) for n, key in enumerate(keys) if key in gold]
        assert 0.2 <= sum(spots) / len(spots) <= 0.8
        assert not all(key in gold for key in keys[-len(spots) :])
    assert sorted(rank.values())  # every task has a place in its push

    names, matrix = _features(records, groups)
    # The classifier is given every kind of field, not a convenient subset.
    for needed in (
        "t.task.id:rank",
        "t.task.inner_id",
        "t.task.overlap",
        "t.task.created_at:time:in_batch",
        "t.task.data.dataops_item:value",
        "t.task.data.image:len",
        "t.task.data.image?exp:in_batch",
        "t.task.predictions:len",
        "t.task.predictions[0].model_version:len",
        "t.task.predictions[0].score:none",
        "t.listing.position:rank",
        "t.listing.pushed_at:time",
        "t.image.shown_before",
    ):
        assert needed in names, needed
    auc = _cv_auc(matrix, labels)
    single = _univariate(names, matrix, labels)
    leaks = {n: a for n, a in single.items() if a > 0.75}
    print("strongest single fields:", sorted(single.items(), key=lambda kv: -kv[1])[:3])
    _, old_matrix = _features(old_records, groups)
    old_auc = _cv_auc(old_matrix, labels)
    print(f"gold vs regular AUC: now {auc:.3f} on {matrix.shape[1]} features, before {old_auc:.3f}")
    assert leaks == {}
    assert auc <= MAX_AUC
    assert old_auc >= 0.95
