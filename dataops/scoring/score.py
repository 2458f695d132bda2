"""Scoring: which images a model version still has to score, and storing what it said.

Every ok image without a prediction from the version is scored in DataLoader batches; each
batch commits on its own (the job handler owns those transactions), with ``ON CONFLICT DO
NOTHING``, so an interrupted job resumes where it stopped and two jobs never store an image
twice. An image that can no longer be decoded is quarantined with the reason, as ingest would
have done. A job first re-derives the embeddings of scored images that the embedding files
lack (a lost or torn file, another machine's data dir), so after any crash one successful run
makes files and catalog agree again.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from dataops.catalog.models import OK, QUARANTINED, Image
from dataops.database.dialect import insert
from dataops.events import service as events
from dataops.scoring.embeddings import EmbeddingStore
from dataops.scoring.inference import InputSpec
from dataops.scoring.models import Prediction
from dataops.scoring.schemas import ScoreParams
from dataops.scoring.service import (
    image_location,
    model_uri,
    ref_of,
    resolve_model,
    scored_image_ids,
)

_INSERT_CHUNK = 500


def pin(session: Session, request: ScoreParams) -> ScoreParams:
    """The request as its job runs it: checked now, naming the version (``name:version``) that
    the model reference means now, so a later run scores with the same one."""
    return request.model_copy(update={"model": ref_of(resolve_model(session, request.model))})


def images_to_score(
    session: Session, model_version_id: int, *, rescore: bool
) -> list[tuple[int, str]]:
    """(image id, location) of ok images without a prediction from the version, by id."""
    stmt = select(Image.id, Image.uri, Image.blob_key).where(Image.status == OK).order_by(Image.id)
    if not rescore:
        stmt = stmt.where(
            ~exists().where(
                Prediction.image_id == Image.id, Prediction.model_version_id == model_version_id
            )
        )
    return [(i, image_location(uri, key)) for i, uri, key in session.execute(stmt)]


def locations(session: Session, image_ids: Sequence[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for start in range(0, len(image_ids), _INSERT_CHUNK):
        part = list(image_ids[start : start + _INSERT_CHUNK])
        stmt = select(Image.id, Image.uri, Image.blob_key).where(Image.id.in_(part))
        out.update((i, image_location(uri, key)) for i, uri, key in session.execute(stmt))
    return dict(sorted(out.items()))


def store_predictions(
    session: Session,
    model_version_id: int,
    classes: Sequence[str],
    image_ids: Sequence[int],
    probs: NDArray[np.floating[Any]],
    *,
    overwrite: bool = False,
) -> int:
    """Insert one prediction per image; existing ones are kept (or replaced with ``overwrite``).

    Returns how many rows were written.
    """
    from dataops.scoring import uncertainty

    if len(image_ids) == 0:
        return 0
    scores = uncertainty.all_scores(probs)
    top = np.argmax(probs, axis=1)
    rows = [
        {
            "model_version_id": model_version_id,
            "image_id": int(image_id),
            "probs": [float(p) for p in probs[i]],
            "predicted_class": str(classes[int(top[i])]),
            "predicted_score": float(probs[i, top[i]]),
            "least_confidence": float(scores["least_confidence"][i]),
            "margin": float(scores["margin"][i]),
            "entropy": float(scores["entropy"][i]),
        }
        for i, image_id in enumerate(image_ids)
    ]
    written = 0
    for start in range(0, len(rows), _INSERT_CHUNK):
        stmt = insert(session, Prediction).values(rows[start : start + _INSERT_CHUNK])
        keys = ["model_version_id", "image_id"]
        if overwrite:
            excluded = stmt.excluded
            stmt = stmt.on_conflict_do_update(
                index_elements=keys,
                set_={
                    name: excluded[name]
                    for name in (
                        "probs",
                        "predicted_class",
                        "predicted_score",
                        "least_confidence",
                        "margin",
                        "entropy",
                        "created_at",
                    )
                },
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=keys)
        written += len(session.scalars(stmt.returning(Prediction.image_id)).all())
    return written


def quarantine_unreadable(
    session: Session, failures: Sequence[tuple[int, str]], *, model: str, actor: str | None
) -> int:
    """Images that no longer decode cannot be labeled either: quarantine them with the reason."""
    count = 0
    for image_id, reason in failures:
        image = session.get(Image, image_id)
        if image is None or image.status != OK:
            continue
        image.status = QUARANTINED
        image.quarantine_reason = f"unreadable when scored by {model}: {reason}"
        count += 1
        events.record(
            session,
            "image.quarantined",
            "image",
            image_id,
            actor=actor,
            details={"reason": image.quarantine_reason},
        )
    session.flush()
    return count


def num_workers(requested: int | None, images: int) -> int:
    if multiprocessing.current_process().daemon:
        return 0  # a Celery prefork child cannot start DataLoader worker processes
    if requested is not None:
        return requested
    if images < 256:
        return 0  # starting worker processes costs more than decoding a few images
    return max(1, min(4, (os.cpu_count() or 1) - 1))


@dataclass(frozen=True)
class Target:
    """What a scoring run needs from a model version, read once so no session stays open."""

    id: int
    ref: str
    uri: str
    classes: list[str]
    spec: InputSpec
    store: EmbeddingStore | None


def plan_scoring(
    session: Session, ref: str | None, *, rescore: bool
) -> tuple[Target, list[tuple[int, str]], list[tuple[int, str]], int]:
    """The model to run, images to predict, images whose embedding was lost, ok image count."""
    mv = resolve_model(session, ref)
    target = Target(
        id=mv.id,
        ref=ref_of(mv),
        uri=model_uri(mv),
        classes=[str(c) for c in mv.classes],
        spec=InputSpec.model_validate(mv.input_spec),
        store=EmbeddingStore.of(mv) if mv.has_embedding else None,
    )
    todo = images_to_score(session, mv.id, rescore=rescore)
    ok_total = session.scalar(select(func.count()).where(Image.status == OK)) or 0
    rederive: list[tuple[int, str]] = []
    if target.store is not None:
        have, _ = target.store.read()
        pending = {image_id for image_id, _ in todo}
        lost = np.setdiff1d(scored_image_ids(session, mv.id, ok_only=True), have)
        rederive = list(locations(session, [int(i) for i in lost if int(i) not in pending]).items())
    return target, todo, rederive, int(ok_total)
