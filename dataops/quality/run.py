"""A label-quality run: gather the task's live labels, get out-of-sample probabilities, store scores.

Only classification labels (a payload with ``class``) are judged; box labels are left out
(see the README: cleanlab's object-detection support is not wired in).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.catalog.models import Image
from dataops.database.dialect import insert
from dataops.labeling.labels import live_versions
from dataops.labeling.models import ACCEPTED, ADJUDICATED, SUBMITTED
from dataops.quality import issues, kfold
from dataops.quality.errors import (
    InvalidProbabilities,
    NoEmbeddings,
    NotOutOfSample,
    TooFewLabels,
)
from dataops.quality.models import IMPORTED, KFOLD, LabelQuality, LabelQualityRun
from dataops.quality.schemas import LabelQualityRequest
from dataops.scoring.models import ModelVersion

JUDGED = (SUBMITTED, ACCEPTED, ADJUDICATED)
_CHUNK = 1000


@dataclass(frozen=True)
class Labels:
    """Row i: one live label version with its image and given class (an index into classes)."""

    version_ids: NDArray[Any]
    image_ids: NDArray[Any]
    sha256: list[str]
    given: NDArray[Any]
    classes: list[str]


def check_request(request: LabelQualityRequest) -> None:
    """Refuse what would make confident learning trust the model's own fit, before any work."""
    if request.source == "predictions":
        raise NotOutOfSample(
            "{source} predictions is refused: a model's stored predictions may come from images "
            "it was trained on, and a model agrees with the labels it fitted, so their mistakes "
            "would look correct; use kfold (a head trained on the model's embeddings with each "
            "label held out) or imported probabilities declared out-of-sample",
            fields=("source",),
        )
    if request.source == IMPORTED:
        if request.probabilities is None:
            raise InvalidProbabilities(
                "imported needs {probabilities}: a CSV of sha256 and one column per class",
                fields=("probabilities",),
            )
        if not request.out_of_sample:
            raise NotOutOfSample(
                "imported probabilities must be declared out-of-sample with {out_of_sample}: "
                "only predictions from a model that never saw an image's label can flag that "
                "label as wrong",
                fields=("out_of_sample",),
            )
    elif request.probabilities is not None:
        raise InvalidProbabilities(
            "{probabilities} is read only with source imported", fields=("probabilities",)
        )


def gather(session: Session, task: str) -> Labels:
    versions = [
        v
        for v in live_versions(session, task=task)
        if v.status in JUDGED and isinstance(v.payload.get("class"), str)
    ]
    if len(versions) < 2:
        raise TooFewLabels(
            f"task {task!r} has {len(versions)} live class labels; label quality needs at least 2",
        )
    image_ids = np.array([v.image_id for v in versions], dtype=np.int64)
    sha: dict[int, str] = {}
    unique = sorted(set(image_ids.tolist()))
    for start in range(0, len(unique), _CHUNK):
        part = unique[start : start + _CHUNK]
        for image_id, sha256 in session.execute(
            select(Image.id, Image.sha256).where(Image.id.in_(part))
        ):
            sha[image_id] = sha256
    classes = sorted({str(v.payload["class"]) for v in versions})
    index = {c: i for i, c in enumerate(classes)}
    return Labels(
        version_ids=np.array([v.id for v in versions], dtype=np.int64),
        image_ids=image_ids,
        sha256=[sha[i] for i in image_ids.tolist()],
        given=np.array([index[str(v.payload["class"])] for v in versions], dtype=np.int64),
        classes=classes,
    )


def kfold_probs(model: ModelVersion, labels: Labels, folds: int, seed: int) -> NDArray[Any]:
    from dataops.scoring.embeddings import EmbeddingStore
    from dataops.scoring.service import ref_of

    vectors, missing = EmbeddingStore.of(model).vectors_for(labels.image_ids)
    if not model.has_embedding or missing.any():
        ref = ref_of(model)
        raise NoEmbeddings(
            f"{int(missing.sum())} of {len(missing)} labeled images have no stored embedding "
            f"from {ref}; run `dataops score --model {ref}` first",
        )
    return kfold.out_of_sample_probs(
        vectors, labels.given, len(labels.classes), folds=folds, seed=seed, groups=labels.image_ids
    )


def imported_probs(path: str, labels: Labels) -> NDArray[Any]:
    """Probabilities from a CSV (``sha256`` and one column per class), rows in label order."""
    try:
        with Path(path).open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise InvalidProbabilities(
            f"cannot read {{probabilities}}: {exc.strerror}", fields=("probabilities",)
        ) from exc
    header = list(rows[0]) if rows else []
    missing = [c for c in labels.classes if c not in header]
    if "sha256" not in header or missing:
        raise InvalidProbabilities(
            f"{{probabilities}} needs columns sha256 and {', '.join(labels.classes)}; "
            f"missing {', '.join((['sha256'] if 'sha256' not in header else []) + missing)}",
            fields=("probabilities",),
        )
    by_sha: dict[str, list[float]] = {}
    try:
        for row in rows:
            by_sha[row["sha256"].strip().lower()] = [float(row[c]) for c in labels.classes]
    except ValueError as exc:
        raise InvalidProbabilities(
            f"{{probabilities}} has a value that is not a number ({exc})", fields=("probabilities",)
        ) from exc
    absent = sorted({s for s in labels.sha256 if s not in by_sha})
    if absent:
        raise InvalidProbabilities(
            f"{{probabilities}} has no row for {len(absent)} labeled images (first {absent[0]})",
            fields=("probabilities",),
        )
    probs = np.array([by_sha[s] for s in labels.sha256], dtype=np.float64)
    if not np.isfinite(probs).all() or (probs < 0).any() or (probs.sum(axis=1) <= 0).any():
        raise InvalidProbabilities(
            "{probabilities} must hold non-negative, finite values with a positive sum per row",
            fields=("probabilities",),
        )
    normalised: NDArray[Any] = probs / probs.sum(axis=1, keepdims=True)
    return normalised


def run_label_quality(
    session: Session,
    request: LabelQualityRequest,
    *,
    actor: str | None = None,
    job_id: str | None = None,
) -> LabelQualityRun:
    """Score every live class label of the task and store the run (flushes, never commits)."""
    from dataops.scoring.service import resolve_model

    check_request(request)
    labels = gather(session, request.task)
    model: ModelVersion | None = None
    if request.source == KFOLD:
        model = resolve_model(session, request.model)
        probs = kfold_probs(model, labels, request.folds, request.seed)
        params = {"folds": request.folds, "seed": request.seed, "head": "logistic_regression"}
    else:
        assert request.probabilities is not None
        probs = imported_probs(request.probabilities, labels)
        params = {"probabilities": request.probabilities, "out_of_sample": True}
    found = issues.find(labels.given, probs)
    run = LabelQualityRun(
        task=request.task,
        source=request.source,
        model_version_id=model.id if model is not None else None,
        params=params,
        classes=labels.classes,
        labels=len(labels.given),
        issues=int(found.is_issue.sum()),
        per_class=issues.per_class(labels.given, found.is_issue, labels.classes),
        job_id=job_id,
        created_by=actor,
    )
    session.add(run)
    session.flush()
    rows = [
        {
            "run_id": run.id,
            "label_version_id": int(labels.version_ids[i]),
            "image_id": int(labels.image_ids[i]),
            "given_class": labels.classes[int(labels.given[i])],
            "suggested_class": labels.classes[int(found.suggested[i])],
            "quality": float(found.quality[i]),
            "is_issue": bool(found.is_issue[i]),
        }
        for i in range(len(labels.given))
    ]
    for start in range(0, len(rows), _CHUNK):
        session.execute(insert(session, LabelQuality), rows[start : start + _CHUNK])
    session.flush()
    return run
