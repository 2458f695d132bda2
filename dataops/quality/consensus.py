"""Consensus labels and annotator skill from a model (CROWDLAB, cleanlab's multiannotator).

A majority vote counts a weak and a strong annotator the same; CROWDLAB weighs each answer by
the annotator's estimated quality and the model's probabilities, so its consensus can
overrule a wrong majority and it ranks annotators by how often they are right.

Input is each annotator's live answer per item (``dataops.audits.answers``) and one scored
model version's stored probabilities (``scoring.models.Prediction``). Only classification
answers count; items the model did not score are left out (and counted).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dataops.scoring.models import ModelVersion, Prediction

METHOD = "crowdlab"


@dataclass
class ItemConsensus:
    label: str
    quality: float
    agreement: float
    answers: int


@dataclass
class AnnotatorSkill:
    annotator: str
    quality: float
    agreement_with_consensus: float
    labeled: int
    worst_class: str | None


@dataclass
class Consensus:
    """CROWDLAB's result: per item (by image id) and per annotator, best first."""

    model: str
    model_version_id: int
    items: dict[int, ItemConsensus]
    annotators: list[AnnotatorSkill]
    skipped: int = 0
    library: str = field(default_factory=lambda: _library())

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": METHOD,
            "library": self.library,
            "model": self.model,
            "model_version_id": self.model_version_id,
            "n_items": len(self.items),
            "n_skipped": self.skipped,
            "annotators": [vars(a) for a in self.annotators],
        }


def _library() -> str:
    import cleanlab

    return f"cleanlab {cleanlab.__version__}"


def crowdlab(
    answers: Mapping[Any, Mapping[str, str]],
    probs: Mapping[Any, Sequence[float]],
    classes: Sequence[str],
) -> tuple[dict[Any, ItemConsensus], list[AnnotatorSkill]]:
    """CROWDLAB on ``answers`` (item -> annotator -> class) and ``probs`` (item -> one
    probability per class, in ``classes`` order). Items without probabilities or answers are
    left out; classes outside ``classes`` are an error (the model cannot weigh them)."""
    import numpy as np
    from cleanlab.multiannotator import get_label_quality_multiannotator

    keys = [k for k in answers if answers[k] and k in probs]
    index = {c: i for i, c in enumerate(classes)}
    names = sorted({name for k in keys for name in answers[k]})
    if not keys or not names:
        return {}, []
    unknown = {c for k in keys for c in answers[k].values() if c not in index}
    if unknown:
        raise ValueError(f"classes {sorted(unknown)} are not among the model's classes")
    grid = np.full((len(keys), len(names)), np.nan)
    column = {name: j for j, name in enumerate(names)}
    for i, k in enumerate(keys):
        for name, cls in answers[k].items():
            grid[i, column[name]] = index[cls]
    pred = np.asarray([probs[k] for k in keys], dtype=float)
    pred = pred / pred.sum(axis=1, keepdims=True)
    result = get_label_quality_multiannotator(
        grid,
        pred,
        return_detailed_quality=False,
        verbose=False,
    )
    quality = result["label_quality"]
    items = {
        k: ItemConsensus(
            label=str(classes[int(row.consensus_label)]),
            quality=_num(row.consensus_quality_score),
            agreement=_num(row.annotator_agreement),
            answers=int(row.num_annotations),
        )
        for k, row in zip(keys, quality.itertuples(index=False), strict=True)
    }
    stats = result["annotator_stats"]
    skills = [
        AnnotatorSkill(
            annotator=names[int(column_index)],
            quality=_num(row["annotator_quality"]),
            agreement_with_consensus=_num(row["agreement_with_consensus"]),
            labeled=int(row["num_examples_labeled"]),
            worst_class=_class_name(row["worst_class"], classes),
        )
        for column_index, row in stats.iterrows()
    ]
    skills.sort(key=lambda s: (-s.quality, s.annotator))
    return items, skills


def _num(value: Any) -> float:
    number = float(value)
    return number if math.isfinite(number) else 0.0


def _class_name(value: Any, classes: Sequence[str]) -> str | None:
    try:
        return str(classes[int(value)])
    except (TypeError, ValueError, IndexError):
        return None


def scored_model(session: Session, image_ids: Sequence[int]) -> ModelVersion | None:
    """The model version whose predictions cover most of the images: the current version of
    its name first, then the newest. None when no version scored any of them."""
    if not image_ids:
        return None
    covered = func.count(Prediction.id)
    row = session.execute(
        select(ModelVersion, covered)
        .join(Prediction, Prediction.model_version_id == ModelVersion.id)
        .where(Prediction.image_id.in_(sorted(set(image_ids))))
        .group_by(ModelVersion.id)
        .order_by(covered.desc(), ModelVersion.is_current.desc(), ModelVersion.id.desc())
        .limit(1)
    ).first()
    return row[0] if row is not None else None


def stored_probs(
    session: Session, model_version_id: int, image_ids: Sequence[int]
) -> dict[int, list[float]]:
    rows = session.execute(
        select(Prediction.image_id, Prediction.probs).where(
            Prediction.model_version_id == model_version_id,
            Prediction.image_id.in_(sorted(set(image_ids))),
        )
    )
    return {int(image_id): list(p) for image_id, p in rows}


def consensus_of(
    session: Session, answers: Mapping[int, Mapping[str, str]]
) -> tuple[Consensus | None, str | None]:
    """CROWDLAB for a batch's answers (image id -> annotator -> class) with the model that
    scored most of its images; or None and the reason there is none."""
    from dataops.scoring.service import ref_of

    ids = [k for k, v in answers.items() if v]
    mv = scored_model(session, ids)
    if mv is None:
        return None, "no model version has scored the batch's images"
    classes = [str(c) for c in mv.classes]
    given = {c for v in answers.values() for c in v.values()}
    if not given <= set(classes):
        missing = ", ".join(sorted(given - set(classes)))
        return None, f"model {ref_of(mv)} has no class for answers {missing}"
    probs = stored_probs(session, mv.id, ids)
    if not any(len(answers[k]) >= 2 for k in ids if k in probs):
        # With one answer per item there is nothing to weigh annotators against each other.
        return None, "no scored item has answers from two annotators"
    try:
        items, skills = crowdlab(answers, probs, classes)
    except ValueError as exc:
        return None, f"cleanlab could not weigh these answers: {exc}"
    if not items:
        return None, f"model {ref_of(mv)} scored none of the answered images"
    skipped = sum(1 for k in ids if k not in items)
    return Consensus(ref_of(mv), mv.id, items, skills, skipped), None


def consensus_accuracy(labels: Sequence[str], truth: Sequence[str]) -> float:
    """Share of items whose consensus equals the true class (the benchmark's measure)."""
    return sum(a == b for a, b in zip(labels, truth, strict=True)) / max(1, len(truth))
