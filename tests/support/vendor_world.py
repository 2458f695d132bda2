"""A vendor queue over real corpus images, a scored catalog, a gold pool, and batches to push.

PYTEST_DONT_REWRITE: helpers only.
"""

from __future__ import annotations

import hashlib
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from dataops.db import session_scope

CLASSES = ["T-Shirt", "Pants", "Shoes", "Dress"]


@dataclass(frozen=True)
class VendorWorld:
    queue_id: int
    model_id: int
    vendor: str
    unlabelled: list[int]
    gold_pool: list[int]


def copy_clothing(corpus: Path, dest: Path, count: int) -> Path:
    """`count` clothing photos in a fresh folder."""
    dest.mkdir(parents=True, exist_ok=True)
    for src in sorted((corpus / "clothing-dataset").glob("*.jpg"))[:count]:
        shutil.copy(src, dest / src.name)
    return dest


def build(
    image_dir: Path,
    *,
    overlap: float,
    gold: float,
    gold_pool: int,
    vendor: str = "acme",
    queue: str = "acme-garments",
    seed: int = 0,
) -> VendorWorld:
    """Ingest the folder, score every image, accept labels on `gold_pool` of them."""
    from dataops.catalog.ingest import ingest
    from dataops.catalog.models import Image
    from dataops.labeling import service as labeling
    from dataops.labeling.models import Guideline
    from dataops.labelstudio.config import label_config
    from dataops.scoring.models import ModelVersion, Prediction

    ingest([str(image_dir)], transaction=session_scope)
    rng = random.Random(seed)
    with session_scope() as session:
        images = list(session.scalars(select(Image).where(Image.status == "ok").order_by(Image.id)))
        labeling.create_vendor(session, vendor)
        guideline = Guideline(
            name="garments",
            version=1,
            sha256=hashlib.sha256(b"garments v1").hexdigest(),
            kind="classification",
            classes=CLASSES,
            body="Pick the garment type.",
            label_config=label_config("classification", CLASSES),
        )
        session.add(guideline)
        session.flush()
        made, _ = labeling.create_queue(
            session, queue, vendor=vendor, guideline="garments:1", overlap=overlap, gold=gold
        )
        model = ModelVersion(
            name="clf",
            version=1,
            sha256="c" * 64,
            blob_key="c" * 64,
            classes=CLASSES,
            input_spec={},
        )
        session.add(model)
        session.flush()
        for image in images:
            probs = [rng.random() + 0.05 for _ in CLASSES]
            total = sum(probs)
            probs = [p / total for p in probs]
            best = max(range(len(CLASSES)), key=probs.__getitem__)
            session.add(
                Prediction(
                    model_version_id=model.id,
                    image_id=image.id,
                    probs=probs,
                    predicted_class=CLASSES[best],
                    predicted_score=probs[best],
                    least_confidence=1 - probs[best],
                    margin=0.1,
                    entropy=1.0,
                )
            )
        pool = images[:gold_pool]
        for image in pool:
            labeling.add_label_version(
                session,
                image_id=image.id,
                payload={"class": rng.choice(CLASSES)},
                source="csv",
                source_id=f"vetted-{image.sha256[:16]}",
                guideline_id=guideline.id,
                task="garments",
                status="accepted",
            )
        return VendorWorld(
            queue_id=made.id,
            model_id=model.id,
            vendor=vendor,
            unlabelled=[i.id for i in images[gold_pool:]],
            gold_pool=[i.id for i in pool],
        )


def add_batch(
    world: VendorWorld, image_ids: list[int], *, seed: int, overlap: float, gold: float
) -> int:
    """A draft batch of the least confident of `image_ids`, keyed the way selection keys them."""
    from dataops.scoring.models import Prediction
    from dataops.selection.models import Batch, BatchItem

    with session_scope() as session:
        scores = dict(
            session.execute(
                select(Prediction.image_id, Prediction.predicted_score).where(
                    Prediction.model_version_id == world.model_id,
                    Prediction.image_id.in_(image_ids),
                )
            ).all()
        )
        batch = Batch(
            purpose="active_learning",
            strategy="least_confidence",
            seed=seed,
            model_version_id=world.model_id,
            queue_id=world.queue_id,
            size=len(image_ids),
            overlap=overlap,
            gold=gold,
        )
        session.add(batch)
        session.flush()
        ordered = sorted(image_ids, key=lambda i: scores.get(i, 1.0))
        for position, image_id in enumerate(ordered):
            session.add(
                BatchItem(
                    batch_id=batch.id,
                    image_id=image_id,
                    item_key=f"b{batch.id}-i{image_id}",
                    position=position,
                    score=1 - scores.get(image_id, 1.0),
                )
            )
        return batch.id


def push(batch_id: int, *, page_size: int = 100) -> dict[str, Any]:
    from dataops.jobs import dispatch

    job = dispatch.submit(
        "sync", {"action": "push", "batch_id": batch_id, "page_size": page_size}, actor="test"
    )
    assert job.status == "succeeded", job.error
    assert job.result is not None
    return job.result


def use_labelstudio(monkeypatch: Any, url: str, token: str) -> None:
    from dataops.config import reset_settings

    monkeypatch.setenv("DATAOPS_LABELSTUDIO_URL", url)
    monkeypatch.setenv("DATAOPS_LABELSTUDIO_TOKEN", token)
    reset_settings()
