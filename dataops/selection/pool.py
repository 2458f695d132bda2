"""Who may be selected: the eligibility rules, and the candidate pool a strategy ranks.

Eligible, always, whatever the strategy:

- the image is ``ok`` (not quarantined);
- it has no live label for the task (the newest version of some annotator's label that is not
  deleted or rejected: a rejected label asks for the image to be labeled again);
- it is not claimed by an open batch (``image_claims``: at most one open batch per image);
- it is not in a held-out split (every manifest split except ``train``: val, test, …);
- the duplicate group is the unit of selection: an image is not eligible when a member of its
  group is held out, labeled or in flight, and a batch gets at most one image per group (the
  member the strategy ranks highest, then the group's representative, then the lowest id).

Hard negatives in ``labeled`` mode are the one exception to the label rule: their candidates
are the images whose accepted label (adjudicated first, else the newest accepted) is another
class, because finding label errors and the model's worst confusions is the point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import (
    BigInteger,
    Float,
    LargeBinary,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    union,
)
from sqlalchemy.orm import Session, aliased

from dataops.catalog.models import OK, Image
from dataops.database.dialect import is_sqlite
from dataops.dedup.models import DupGroup
from dataops.labeling.models import ACCEPTED, ADJUDICATED, DELETED, REJECTED, RELEASED, LabelVersion
from dataops.manifests.models import ManifestRow
from dataops.scoring.models import ModelVersion, Prediction
from dataops.selection.models import ImageClaim
from dataops.selection.plan import Plan

TRAIN_SPLIT = "train"
MISSING_STRATUM = ""
STRATUM_KEY = "stratum"
CHUNK = 500

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Flags = NDArray[np.bool_]
Scalar = TypeVar("Scalar", bound=np.generic)


def _live_label_ids(task: str) -> Any:
    return (
        select(func.max(LabelVersion.id))
        .where(LabelVersion.task == task)
        .group_by(
            LabelVersion.image_id,
            LabelVersion.annotator_id,
            LabelVersion.task,
            LabelVersion.batch_id,
        )
    )


def labeled_images(task: str) -> Any:
    """Images with a live label for the task that still counts (not deleted, rejected or
    released: a released answer is kept but leaves its image to the pool)."""
    return select(LabelVersion.image_id).where(
        LabelVersion.id.in_(_live_label_ids(task)),
        LabelVersion.status.not_in((DELETED, REJECTED, RELEASED)),
    )


def labeled_for_task(task: str) -> Any:
    """A condition on ``Image``: labeled for the task, itself or through its duplicate group."""
    labeled = labeled_images(task)
    return or_(
        Image.id.in_(labeled),
        and_(Image.dup_group_id.is_not(None), Image.dup_group_id.in_(_groups_of(labeled))),
    )


def _held_out_images() -> Any:
    return select(ManifestRow.image_id).where(ManifestRow.split != TRAIN_SPLIT)


def _groups_of(images: Any) -> Any:
    member = aliased(Image)
    return select(member.dup_group_id).where(
        member.id.in_(images), member.dup_group_id.is_not(None)
    )


def _held_out_groups() -> Any:
    """Duplicate groups with a held-out member: now, and as recorded when the manifest froze."""
    return union(
        _groups_of(_held_out_images()),
        select(ManifestRow.dup_group_id).where(
            ManifestRow.split != TRAIN_SPLIT, ManifestRow.dup_group_id.is_not(None)
        ),
    )


def _not_in_groups(groups: Any) -> Any:
    return or_(Image.dup_group_id.is_(None), Image.dup_group_id.not_in(groups))


def _eligibility(task: str, *, labeled: bool) -> list[Any]:
    claimed = select(ImageClaim.image_id)
    conditions = [
        Image.status == OK,
        Image.id.not_in(claimed),
        _not_in_groups(_groups_of(claimed)),
        Image.id.not_in(_held_out_images()),
        _not_in_groups(_held_out_groups()),
    ]
    if not labeled:
        conditions.append(Image.id.not_in(labeled_images(task)))
        conditions.append(_not_in_groups(_groups_of(labeled_images(task))))
    return conditions


@dataclass
class Pool:
    """Eligible candidates, one row each, sorted by image id."""

    image_ids: Ints
    groups: Ints
    representative: Flags
    scored: Flags
    scores: Floats | None = None
    strata: Ints | None = None
    strata_names: tuple[str, ...] = ()
    phash: Ints | None = None
    probs: Floats | None = None

    def __len__(self) -> int:
        return len(self.image_ids)

    def take(self, rows: Ints) -> Pool:
        def part(a: NDArray[Scalar] | None) -> NDArray[Scalar] | None:
            return None if a is None else a[rows]

        return Pool(
            image_ids=self.image_ids[rows],
            groups=self.groups[rows],
            representative=self.representative[rows],
            scored=self.scored[rows],
            scores=part(self.scores),
            strata=part(self.strata),
            strata_names=self.strata_names,
            phash=part(self.phash),
            probs=part(self.probs),
        )


def _score_expr(plan: Plan) -> Any:
    column = plan.score_column
    if column is None:
        return None
    if column == "class_probability":
        assert plan.class_index is not None
        return Prediction.probs[plan.class_index].as_float()
    return getattr(Prediction, column)


def _stratum_expr(plan: Plan) -> Any:
    assert plan.stratify_by is not None
    return func.coalesce(Image.attributes[plan.stratify_by].as_string(), MISSING_STRATUM)


def eligible_pool(session: Session, plan: Plan) -> Pool:
    """Every eligible image for the plan, with what its strategy needs, sorted by image id.

    Scores are read in a second query and matched by image id in numpy: two scans cost less
    than joining a million images with a million predictions in the database.
    """
    labeled_mode = plan.rule.needs_class and plan.mode == "labeled"
    suspects = _suspects(session, plan) if plan.rule.flagged_labels else None
    representatives = select(DupGroup.representative_id).where(
        DupGroup.representative_id.is_not(None)
    )
    columns: dict[str, Any] = {
        "id": Image.id,
        "group": func.coalesce(Image.dup_group_id, -1),
        "rep": case((Image.id.in_(representatives), 1), else_=0),
    }
    if plan.rule.spreads and not plan.has_embeddings:
        columns["phash"] = func.coalesce(Image.phash, 0)
    selected = [cast(expr, BigInteger).label(name) for name, expr in columns.items()]
    if plan.stratify_by:
        selected.append(_stratum_expr(plan).label(STRATUM_KEY))
    stmt = select(*selected).where(
        *_eligibility(plan.task, labeled=labeled_mode or suspects is not None)
    )
    if suspects is not None:
        stmt = stmt.where(Image.id.in_(list(suspects)))
    if labeled_mode:
        stmt = stmt.where(Image.id.in_(_accepted_negatives(plan)))
    # Codes follow the sorted values, so the core sees the strata in the same order as names.
    data, names = fetch_columns(
        session, stmt, dict.fromkeys(columns, False), key=STRATUM_KEY if plan.stratify_by else None
    )
    order = np.argsort(data["id"], kind="stable")
    ids = data["id"][order]
    pool = Pool(
        image_ids=ids,
        groups=data["group"][order],
        representative=data["rep"][order].astype(bool),
        scored=np.ones(len(ids), dtype=bool),
        strata=data[STRATUM_KEY][order] if plan.stratify_by else None,
        strata_names=tuple(names),
        phash=data["phash"][order] if "phash" in data else None,
    )
    score = _score_expr(plan)
    if plan.model is not None and score is not None:
        pool.scored, pool.scores = _scores_for(session, plan.model, score, ids)
    if suspects is not None:
        pool.scores = np.array([1.0 - suspects[i] for i in ids.tolist()], dtype=np.float64)
    if labeled_mode:
        negatives = _accepted_negative_ids(session, plan, pool.image_ids)
        pool = pool.take(np.flatnonzero(np.isin(pool.image_ids, negatives)))
    if plan.rule.reads_probs and plan.model is not None:
        pool.probs = _probs_for(session, plan.model, pool.image_ids)
    return pool


def _suspects(session: Session, plan: Plan) -> dict[int, float]:
    """Image id -> lowest label quality among the labels the task's newest run flagged."""
    from dataops.quality.service import latest_run, suspect_images

    return suspect_images(session, latest_run(session, plan.task, None).id)


def _scores_for(
    session: Session, mv: ModelVersion, score: Any, image_ids: Ints
) -> tuple[Flags, Floats]:
    """(has a prediction, score or NaN) for each of the sorted ``image_ids``."""
    stmt = select(
        cast(Prediction.image_id, BigInteger).label("image_id"), cast(score, Float).label("score")
    ).where(Prediction.model_version_id == mv.id)
    data, _ = fetch_columns(session, stmt, {"image_id": False, "score": True})
    order = np.argsort(data["image_id"], kind="stable")
    scored_ids, values = data["image_id"][order], data["score"][order]
    scores = np.full(len(image_ids), np.nan)
    if len(scored_ids) == 0:
        return np.zeros(len(image_ids), dtype=bool), scores
    pos = np.minimum(np.searchsorted(scored_ids, image_ids), len(scored_ids) - 1)
    found = scored_ids[pos] == image_ids
    scores[found] = values[pos[found]]
    return found, scores


def fetch_columns(
    session: Session, stmt: Any, columns: dict[str, bool], *, key: str | None = None
) -> tuple[dict[str, NDArray[Any]], list[str]]:
    """Run a select of 64-bit numeric columns (True = float): one array per column.

    ``key`` names an extra text column of the select with few distinct values (an attribute to
    stratify by): it comes back as int codes (``arrays[key]``) into the sorted list of its
    values, returned second.

    On PostgreSQL each column comes back as one ``bytea`` per key value (``string_agg`` of the
    values' binary send form), read straight into numpy: a million rows cost a few aggregate
    calls instead of a million tuples. Aggregates of one group see its rows in the same order.
    """
    dtypes = {name: np.float64 if is_float else np.int64 for name, is_float in columns.items()}
    if is_sqlite(session):
        rows = session.execute(stmt).all()
        out = {
            name: np.fromiter((row[i] for row in rows), dtype, count=len(rows))
            for i, (name, dtype) in enumerate(dtypes.items())
        }
        if key is None:
            return out, []
        labels = [str(row[len(columns)]) for row in rows]
        names = sorted(set(labels))
        index = {name: i for i, name in enumerate(names)}
        out[key] = np.fromiter((index[v] for v in labels), np.int64, count=len(labels))
        return out, names
    sub = stmt.subquery()
    empty = literal(b"", LargeBinary)
    packed = [
        func.string_agg((func.float8send if is_float else func.int8send)(sub.c[name]), empty)
        for name, is_float in columns.items()
    ]
    groups: list[tuple[str, Sequence[Any]]]
    if key is None:
        groups = [("", tuple(session.execute(select(*packed)).one()))]
    else:
        query = select(sub.c[key], *packed).group_by(sub.c[key])
        groups = sorted((str(row[0]), tuple(row[1:])) for row in session.execute(query))
    parts: dict[str, list[NDArray[Any]]] = {name: [] for name in columns}
    codes: list[Ints] = []
    for code, (_, blobs) in enumerate(groups):
        for (name, dtype), blob in zip(dtypes.items(), blobs, strict=True):
            big_endian = ">f8" if dtype is np.float64 else ">i8"
            parts[name].append(np.frombuffer(blob or b"", big_endian).astype(dtype))
        codes.append(np.full(len(parts[next(iter(columns))][-1]), code, dtype=np.int64))
    out = {
        name: np.concatenate(arrays) if arrays else np.empty(0, dtypes[name])
        for name, arrays in parts.items()
    }
    if key is None:
        return out, []
    out[key] = np.concatenate(codes) if codes else np.empty(0, np.int64)
    return out, [name for name, _ in groups]


def _probs_for(session: Session, mv: ModelVersion, image_ids: Ints) -> Floats:
    found: dict[int, list[float]] = {}
    ids = image_ids.tolist()
    for start in range(0, len(ids), CHUNK):
        stmt = select(Prediction.image_id, Prediction.probs).where(
            Prediction.model_version_id == mv.id,
            Prediction.image_id.in_(ids[start : start + CHUNK]),
        )
        found.update((image_id, probs) for image_id, probs in session.execute(stmt))
    uniform = [1.0 / len(mv.classes)] * len(mv.classes)
    return np.array([found.get(i, uniform) for i in ids], dtype=np.float64)


def _accepted_negatives(plan: Plan) -> Any:
    """Images with a live accepted or adjudicated label for the task (class checked later)."""
    return select(LabelVersion.image_id).where(
        LabelVersion.id.in_(_live_label_ids(plan.task)),
        LabelVersion.status.in_((ACCEPTED, ADJUDICATED)),
    )


def _label_classes(payload: dict[str, Any]) -> set[str]:
    if "class" in payload:
        return {str(payload["class"])}
    return {str(box.get("class")) for box in payload.get("boxes", []) if isinstance(box, dict)}


def _accepted_negative_ids(session: Session, plan: Plan, image_ids: Ints) -> Ints:
    """Of the candidates, those whose accepted label says they are not ``plan.class_name``."""
    best: dict[int, tuple[bool, int, dict[str, Any]]] = {}
    candidates = image_ids.tolist()
    for start in range(0, len(candidates), CHUNK):
        stmt = select(
            LabelVersion.image_id, LabelVersion.status, LabelVersion.id, LabelVersion.payload
        ).where(
            LabelVersion.id.in_(_live_label_ids(plan.task)),
            LabelVersion.status.in_((ACCEPTED, ADJUDICATED)),
            LabelVersion.image_id.in_(candidates[start : start + CHUNK]),
        )
        for image_id, status, version_id, payload in session.execute(stmt):
            key = (status == ADJUDICATED, version_id)
            if image_id not in best or key > best[image_id][:2]:
                best[image_id] = (*key, payload or {})
    negatives = [
        i for i, (_, _, payload) in best.items() if plan.class_name not in _label_classes(payload)
    ]
    return np.array(sorted(negatives), dtype=np.int64)


def one_per_group(pool: Pool, preference: Floats | None) -> Pool:
    """Keep one member per duplicate group: highest preference, then representative, then id."""
    grouped = np.flatnonzero(pool.groups >= 0)
    if len(grouped) == 0:
        return pool
    pref = np.zeros(len(grouped)) if preference is None else preference[grouped]
    order = np.lexsort(
        (pool.image_ids[grouped], ~pool.representative[grouped], -pref, pool.groups[grouped])
    )
    keys = pool.groups[grouped][order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    keep = np.concatenate((np.flatnonzero(pool.groups < 0), grouped[order[first]]))
    return pool.take(np.sort(keep))
