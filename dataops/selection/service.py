"""Batch selection: which images are eligible, which of them a strategy picks, and the batch.

Eligible, always, whatever the strategy:

- the image is ``ok`` (not quarantined);
- it has no live label for the task (the newest version of some annotator's label that is not
  deleted or rejected: a rejected label asks for the image to be labeled again);
- it is not claimed by an open batch (``image_claims``: at most one open batch per image);
- it is not in a held-out split (every manifest split except ``train``: val, test, …);
- the duplicate group is the unit of selection: an image is not eligible when a member of its
  group is held out, labeled or in flight, and a batch gets at most one image per group (the
  member the strategy ranks highest, then the group's representative, then the lowest id).

``hard_negative`` in ``labeled`` mode is the one exception to the label rule: its candidates
are the images whose accepted label (adjudicated first, else the newest accepted) is another
class, because finding label errors and the model's worst confusions is the point.

Scores come from the stored predictions of a model version (uncertainty columns, or the
probability of ``--class`` for hard negatives), embeddings from the version's embedding store.
``cold_start`` (no model) picks at random, or k-center over the 64 bits of each image's
perceptual hash, so the first batch spreads over visually different images. k-center starts
from the images already labeled or in flight, so a batch fills the gaps they leave.

Concurrency: the batch row is written first (on SQLite that takes the write lock, so
selections run one after another). Picks are claimed in rank order: on PostgreSQL the image
rows are locked ``FOR UPDATE SKIP LOCKED`` and claims inserted ``ON CONFLICT DO NOTHING``;
only rows actually claimed become items. What a concurrent selection took is replaced by the
next-ranked candidates, so the batch still reaches its size when enough images are eligible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Float,
    LargeBinary,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    union,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from dataops.catalog.models import OK, Image
from dataops.db import is_sqlite, utcnow
from dataops.dedup.models import DupGroup
from dataops.events import service as events
from dataops.labeling.models import (
    ACCEPTED,
    ADJUDICATED,
    DELETED,
    REJECTED,
    RELEASED,
    LabelVersion,
    Queue,
)
from dataops.manifests.models import ManifestRow
from dataops.scoring.models import ModelVersion, Prediction
from dataops.selection import strategies, tasks
from dataops.selection.errors import InvalidSelection, NothingEligible, NotScored, TooFewEligible
from dataops.selection.models import PURPOSES, Batch, BatchItem, ImageClaim
from dataops.selection.schemas import MAX_BATCH_SIZE, BatchItemOut, BatchOut

TRAIN_SPLIT = "train"
UNCERTAINTY = ("least_confidence", "margin", "entropy")
NEEDS_PREDICTIONS = frozenset({*UNCERTAINTY, "cluster_margin", "hard_negative"})
COLD_START_STRATEGIES = ("random", "kcenter")
MISSING_STRATUM = ""
STRATUM_KEY = "stratum"
_CHUNK = 500


@dataclass(frozen=True)
class Plan:
    """A checked request: everything resolved before any row is written."""

    strategy: str
    size: int
    purpose: str
    seed: int
    task: str
    model: ModelVersion | None
    class_name: str | None
    class_index: int | None
    mode: str | None
    queue: Queue | None
    stratify_by: str | None
    allow_partial: bool = False
    requested: int = 0

    @property
    def score_column(self) -> str | None:
        if self.strategy in UNCERTAINTY:
            return self.strategy
        if self.strategy == "cluster_margin":
            return "margin"
        if self.strategy == "hard_negative":
            return "class_probability"
        return None


def _model_ref(mv: ModelVersion) -> str:
    return f"{mv.name}:{mv.version}"


def plan_selection(
    session: Session,
    *,
    strategy: str,
    size: int,
    purpose: str | None = None,
    seed: int = 0,
    model: str | None = None,
    class_name: str | None = None,
    mode: str | None = None,
    queue: str | int | None = None,
    stratify_by: str | None = None,
    task: str | None = None,
    allow_partial: bool = False,
) -> Plan:
    """Check a request and resolve its model, class, queue and task; raises before anything is
    written. The task is the queue's (its guideline's name), else ``task``, else the only one
    there is. A size above ``selection.max_batch_size`` is refused, or capped there when a
    partial batch is allowed."""
    from dataops.config import get_settings
    from dataops.labeling.service import get_queue
    from dataops.scoring.service import resolve_model

    if strategy not in strategies.STRATEGIES:
        raise InvalidSelection(
            f"unknown strategy {strategy!r}; choose one of {', '.join(strategies.STRATEGIES)}"
        )
    if strategy == "stratified":
        if not stratify_by:
            raise InvalidSelection("--strategy stratified needs --stratify-by ATTRIBUTE")
        strategy = "random"
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_BATCH_SIZE:
        raise InvalidSelection(f"--size must be between 1 and {MAX_BATCH_SIZE}, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidSelection(f"--seed must be a non-negative integer, got {seed!r}")
    requested = size
    largest = get_settings().selection.max_batch_size
    if size > largest:
        if not allow_partial:
            raise InvalidSelection(
                f"--size {size} is above the largest batch allowed ({largest}, setting "
                "DATAOPS_SELECTION__MAX_BATCH_SIZE); ask for fewer, or pass --allow-partial "
                f'("allow_partial": true) for a batch of {largest}'
            )
        size = largest
    if purpose is not None and purpose not in PURPOSES:
        raise InvalidSelection(f"unknown purpose {purpose!r}; choose one of {', '.join(PURPOSES)}")
    if stratify_by is not None and not stratify_by.strip():
        raise InvalidSelection("--stratify-by needs an attribute name")
    if strategy != "hard_negative" and (class_name is not None or mode is not None):
        raise InvalidSelection("--class and --mode only apply to --strategy hard_negative")
    if purpose == "cold_start":
        if strategy not in COLD_START_STRATEGIES:
            raise InvalidSelection(
                f"cold_start selects without predictions: use --strategy random or kcenter, "
                f"not {strategy}"
            )
        mv = resolve_model(session, model) if model is not None else None
    elif model is not None or strategy in NEEDS_PREDICTIONS:
        mv = resolve_model(session, model)
    else:
        mv = _default_model(session)
    class_index = None
    if strategy == "hard_negative":
        assert mv is not None
        mode = mode or "unlabeled"
        if mode not in strategies.HARD_NEGATIVE_MODES:
            raise InvalidSelection(f"--mode must be labeled or unlabeled, got {mode!r}")
        if class_name is None:
            raise InvalidSelection(
                f"hard_negative needs --class: one of {', '.join(map(str, mv.classes))}"
            )
        classes = [str(c) for c in mv.classes]
        if class_name not in classes:
            raise InvalidSelection(
                f"model {_model_ref(mv)} has no class {class_name!r}; its classes are "
                f"{', '.join(classes)}"
            )
        class_index = classes.index(class_name)
    if strategy == "cluster_margin" and mv is not None and not mv.has_embedding:
        raise InvalidSelection(
            f"cluster_margin needs embeddings, and model {_model_ref(mv)} returns none; use a "
            "model whose forward returns (logits, embedding), or margin"
        )
    if purpose is None:
        if strategy == "hard_negative":
            purpose = "hard_negative"
        else:
            purpose = "cold_start" if mv is None else "active_learning"
    queue_row = get_queue(session, queue) if queue is not None else None
    return Plan(
        strategy=strategy,
        size=size,
        purpose=purpose,
        seed=seed,
        task=tasks.selection_task(session, queue_row, task),
        model=mv,
        class_name=class_name,
        class_index=class_index,
        mode=mode,
        queue=queue_row,
        stratify_by=stratify_by.strip() if stratify_by else None,
        allow_partial=bool(allow_partial),
        requested=requested,
    )


def _default_model(session: Session) -> ModelVersion | None:
    """The current version of the only registered model, so random batches carry pre-labels."""
    names = session.scalars(select(ModelVersion.name).distinct().limit(2)).all()
    if len(names) != 1:
        return None
    from dataops.scoring.service import resolve_model

    return resolve_model(session, names[0])


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


def _labeled_images(task: str) -> Any:
    """Images with a live label for the task that still counts (not deleted, rejected or
    released: a released answer is kept but leaves its image to the pool)."""
    return select(LabelVersion.image_id).where(
        LabelVersion.id.in_(_live_label_ids(task)),
        LabelVersion.status.not_in((DELETED, REJECTED, RELEASED)),
    )


def labeled_for_task(task: str) -> Any:
    """A condition on ``Image``: labeled for the task, itself or through its duplicate group."""
    labeled = _labeled_images(task)
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
        conditions.append(Image.id.not_in(_labeled_images(task)))
        conditions.append(_not_in_groups(_groups_of(_labeled_images(task))))
    return conditions


@dataclass
class Pool:
    """Eligible candidates, one row each, sorted by image id."""

    image_ids: np.ndarray
    groups: np.ndarray
    representative: np.ndarray
    scored: np.ndarray
    scores: np.ndarray | None = None
    strata: np.ndarray | None = None
    strata_names: tuple[str, ...] = ()
    phash: np.ndarray | None = None
    probs: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.image_ids)

    def take(self, rows: np.ndarray) -> Pool:
        def part(a: np.ndarray | None) -> np.ndarray | None:
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
    labeled_mode = plan.strategy == "hard_negative" and plan.mode == "labeled"
    representatives = select(DupGroup.representative_id).where(
        DupGroup.representative_id.is_not(None)
    )
    columns: dict[str, Any] = {
        "id": Image.id,
        "group": func.coalesce(Image.dup_group_id, -1),
        "rep": case((Image.id.in_(representatives), 1), else_=0),
    }
    if plan.strategy == "kcenter" and not _has_embeddings(plan):
        columns["phash"] = func.coalesce(Image.phash, 0)
    selected = [cast(expr, BigInteger).label(name) for name, expr in columns.items()]
    if plan.stratify_by:
        selected.append(_stratum_expr(plan).label(STRATUM_KEY))
    stmt = select(*selected).where(*_eligibility(plan.task, labeled=labeled_mode))
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
    if labeled_mode:
        negatives = _accepted_negative_ids(session, plan, pool.image_ids)
        pool = pool.take(np.flatnonzero(np.isin(pool.image_ids, negatives)))
    if plan.strategy == "cluster_margin" and plan.model is not None:
        pool.probs = _probs_for(session, plan.model, pool.image_ids)
    return pool


def _scores_for(
    session: Session, mv: ModelVersion, score: Any, image_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
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
) -> tuple[dict[str, np.ndarray], list[str]]:
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
    parts: dict[str, list[np.ndarray]] = {name: [] for name in columns}
    codes: list[np.ndarray] = []
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


def _probs_for(session: Session, mv: ModelVersion, image_ids: np.ndarray) -> np.ndarray:
    found: dict[int, list[float]] = {}
    ids = image_ids.tolist()
    for start in range(0, len(ids), _CHUNK):
        stmt = select(Prediction.image_id, Prediction.probs).where(
            Prediction.model_version_id == mv.id,
            Prediction.image_id.in_(ids[start : start + _CHUNK]),
        )
        found.update((image_id, probs) for image_id, probs in session.execute(stmt))
    uniform = [1.0 / len(mv.classes)] * len(mv.classes)
    return np.array([found.get(i, uniform) for i in ids], dtype=np.float64)


def _has_embeddings(plan: Plan) -> bool:
    return plan.model is not None and plan.model.has_embedding


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


def _accepted_negative_ids(session: Session, plan: Plan, image_ids: np.ndarray) -> np.ndarray:
    """Of the candidates, those whose accepted label says they are not ``plan.class_name``."""
    best: dict[int, tuple[bool, int, dict[str, Any]]] = {}
    candidates = image_ids.tolist()
    for start in range(0, len(candidates), _CHUNK):
        stmt = select(
            LabelVersion.image_id, LabelVersion.status, LabelVersion.id, LabelVersion.payload
        ).where(
            LabelVersion.id.in_(_live_label_ids(plan.task)),
            LabelVersion.status.in_((ACCEPTED, ADJUDICATED)),
            LabelVersion.image_id.in_(candidates[start : start + _CHUNK]),
        )
        for image_id, status, version_id, payload in session.execute(stmt):
            key = (status == ADJUDICATED, version_id)
            if image_id not in best or key > best[image_id][:2]:
                best[image_id] = (*key, payload or {})
    negatives = [
        i for i, (_, _, payload) in best.items() if plan.class_name not in _label_classes(payload)
    ]
    return np.array(sorted(negatives), dtype=np.int64)


def one_per_group(pool: Pool, preference: np.ndarray | None) -> Pool:
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


def _bits(hashes: np.ndarray) -> np.ndarray:
    from dataops.catalog.hashing import to_codes

    if len(hashes) == 0:
        return np.empty((0, 64), np.float32)
    return np.unpackbits(to_codes(hashes), axis=1).astype(np.float32)


def _covered_images(session: Session, task: str) -> list[int]:
    """Images already labeled for the task or in flight: what k-center starts from."""
    labeled = set(session.scalars(_labeled_images(task)))
    claimed = set(session.scalars(select(ImageClaim.image_id)))
    return sorted(labeled | claimed)


def _embeddings(session: Session, plan: Plan, pool: Pool) -> tuple[np.ndarray, np.ndarray, str]:
    """(pool vectors, vectors of covered images, space name) for the embedding strategies."""
    covered = _covered_images(session, plan.task)
    if _has_embeddings(plan):
        from dataops.scoring.service import EmbeddingStore

        assert plan.model is not None
        store = EmbeddingStore.of(plan.model)
        vectors, missing = store.vectors_for(pool.image_ids)
        if missing.any():
            ref = _model_ref(plan.model)
            raise NotScored(
                f"{int(missing.sum())} of {len(pool)} eligible images have no stored embedding "
                f"from {ref}; run `dataops score --model {ref}` first (it also rebuilds lost "
                "embeddings)"
            )
        known, known_missing = store.vectors_for(np.asarray(covered, dtype=np.int64))
        return vectors, known[~known_missing], "embedding"
    hashes = [
        h
        for start in range(0, len(covered), _CHUNK)
        for h in session.scalars(
            select(Image.phash).where(
                Image.id.in_(covered[start : start + _CHUNK]), Image.phash.is_not(None)
            )
        )
    ]
    assert pool.phash is not None
    return _bits(pool.phash), _bits(np.array(hashes, dtype=np.int64)), "phash"


Ranker = Callable[[int], np.ndarray]


def _ranker(session: Session, plan: Plan, pool: Pool) -> tuple[Ranker, dict[str, Any]]:
    """A function m -> the first m picks, in rank order, plus what the batch records about it."""
    seed = plan.seed
    info: dict[str, Any] = {}
    inner: Callable[[np.ndarray, int], np.ndarray]
    if plan.strategy == "random":

        def inner(rows: np.ndarray, m: int) -> np.ndarray:
            return rows[strategies.random(len(rows), m, seed)]

    elif plan.strategy in (*UNCERTAINTY, "hard_negative"):
        assert pool.scores is not None
        scores = pool.scores

        def inner(rows: np.ndarray, m: int) -> np.ndarray:
            return rows[strategies.top_k(scores[rows], m, seed)]

    else:
        vectors, covered, space = _embeddings(session, plan, pool)
        info["space"] = space
        if plan.strategy == "kcenter":

            def inner(rows: np.ndarray, m: int) -> np.ndarray:
                return rows[
                    strategies.kcenter(vectors[rows], m, labeled_embeddings=covered, seed=seed)
                ]

        else:
            probs = pool.probs
            assert probs is not None

            def inner(rows: np.ndarray, m: int) -> np.ndarray:
                picked = strategies.select(
                    "cluster_margin", m, probs=probs[rows], embeddings=vectors[rows], seed=seed
                )
                return rows[picked]

    everything = np.arange(len(pool), dtype=np.int64)
    if plan.stratify_by is None:
        return (lambda m: inner(everything, m)), info
    strata = pool.strata
    assert strata is not None
    counts = np.bincount(strata, minlength=len(pool.strata_names))
    info["strata"] = {name: int(c) for name, c in zip(pool.strata_names, counts, strict=True)}
    return (lambda m: strategies.stratified(strata, m, inner)), info


def _claim(session: Session, batch_id: int, image_ids: list[int]) -> set[int]:
    """Claim what no one else holds; returns the ids this batch now owns.

    One statement: on PostgreSQL the image rows another selection holds are skipped (``FOR
    UPDATE SKIP LOCKED``), and images already claimed by a committed batch are left alone
    (``ON CONFLICT DO NOTHING``).
    """
    if not image_ids:
        return set()
    rows = select(Image.id, literal(batch_id), literal(utcnow())).where(
        Image.id.in_(image_ids), Image.status == OK
    )
    if is_sqlite(session):
        dialect_insert: Any = sqlite.insert
    else:
        dialect_insert = postgresql.insert
        rows = rows.with_for_update(skip_locked=True)
    stmt = (
        dialect_insert(ImageClaim)
        .from_select(["image_id", "batch_id", "claimed_at"], rows)
        .on_conflict_do_nothing(index_elements=["image_id"])
        .returning(ImageClaim.image_id)
    )
    return set(session.scalars(stmt))


def _claim_ranked(
    session: Session, batch_id: int, pool: Pool, rank: Ranker, size: int
) -> list[int]:
    """Claim picks in rank order; picks lost to a concurrent batch are topped up from the next."""
    n = len(pool)
    chosen: list[int] = []
    tried = np.zeros(n, dtype=bool)
    m = min(size, n)
    while True:
        order = rank(m)
        fresh = order[~tried[order]]
        start = 0
        while len(chosen) < size and start < len(fresh):
            rows = fresh[start : start + size - len(chosen)]
            start += len(rows)
            tried[rows] = True
            won = _claim(session, batch_id, pool.image_ids[rows].tolist())
            chosen.extend(int(r) for r in rows if int(pool.image_ids[r]) in won)
        if len(chosen) >= size or m >= n or len(order) < m:
            return chosen
        m = min(n, 2 * m)


def select_batch(
    session: Session,
    *,
    strategy: str,
    size: int,
    purpose: str | None = None,
    seed: int = 0,
    model: str | None = None,
    class_name: str | None = None,
    mode: str | None = None,
    queue: str | int | None = None,
    stratify_by: str | None = None,
    task: str | None = None,
    allow_partial: bool = False,
    actor: str | None = None,
    job_id: str | None = None,
) -> Batch:
    """Create a draft batch of ``size`` eligible images picked by ``strategy``.

    Deterministic for the same catalog, request and seed. Raises ``NotScored`` when the
    strategy needs predictions or embeddings the model version has not produced for every
    eligible image, ``NothingEligible`` when no image can be handed out, and
    ``TooFewEligible`` when fewer than ``size`` are eligible and ``allow_partial`` is off (a
    typo must not quietly claim every eligible image). Concurrent selections can still leave
    a batch short: what another batch took first is not counted as eligible here.
    """
    plan = plan_selection(
        session,
        strategy=strategy,
        size=size,
        purpose=purpose,
        seed=seed,
        model=model,
        class_name=class_name,
        mode=mode,
        queue=queue,
        stratify_by=stratify_by,
        task=task,
        allow_partial=allow_partial,
    )
    batch = Batch(
        purpose=plan.purpose,
        strategy=plan.strategy,
        params={},
        seed=plan.seed,
        model_version_id=plan.model.id if plan.model is not None else None,
        queue_id=plan.queue.id if plan.queue is not None else None,
        overlap=plan.queue.overlap if plan.queue is not None else 0.0,
        gold=plan.queue.gold if plan.queue is not None else 0.0,
        requested_by=actor,
        job_id=job_id,
    )
    session.add(batch)
    session.flush()  # first write: on SQLite this takes the lock that serialises selections
    candidates = eligible_pool(session, plan)
    if plan.strategy in NEEDS_PREDICTIONS and not candidates.scored.all():
        assert plan.model is not None
        ref = _model_ref(plan.model)
        missing = int((~candidates.scored).sum())
        raise NotScored(
            f"{missing} of {len(candidates)} eligible images have no prediction from {ref}; "
            f"run `dataops score --model {ref}` first"
        )
    pool = one_per_group(candidates, candidates.scores)
    if len(pool) == 0:
        raise NothingEligible(_nothing_message(plan))
    if len(pool) < plan.size and not plan.allow_partial:
        raise TooFewEligible(
            f"only {len(pool)} images are eligible for task {plan.task!r} but the batch asks "
            f"for {plan.size}; ask for at most {len(pool)}, or pass --allow-partial "
            '("allow_partial": true) to take them all'
        )
    rank, info = _ranker(session, plan, pool)
    chosen = _claim_ranked(session, batch.id, pool, rank, plan.size)
    if not chosen:
        raise NothingEligible(_nothing_message(plan) + " (a concurrent batch took the rest)")
    session.execute(
        insert(BatchItem),
        [
            {
                "batch_id": batch.id,
                "image_id": int(pool.image_ids[row]),
                "item_key": f"b{batch.id}-i{int(pool.image_ids[row])}",
                "position": position,
                "score": None if pool.scores is None else float(pool.scores[row]),
            }
            for position, row in enumerate(chosen)
        ],
    )
    batch.size = len(chosen)
    batch.params = {
        "requested": plan.requested,
        "candidates": len(candidates),
        "eligible": len(pool),
        "task": plan.task,
        **({"allow_partial": True} if plan.allow_partial else {}),
        **(
            {"class": plan.class_name, "mode": plan.mode}
            if plan.strategy == "hard_negative"
            else {}
        ),
        **({"stratify_by": plan.stratify_by} if plan.stratify_by else {}),
        **({"job_id": job_id} if job_id else {}),
        **info,
    }
    session.flush()
    events.record(
        session,
        "batch.created",
        "batch",
        batch.id,
        actor=actor,
        details={
            "purpose": batch.purpose,
            "strategy": batch.strategy,
            "seed": batch.seed,
            "model": _model_ref(plan.model) if plan.model is not None else None,
            "queue": plan.queue.name if plan.queue is not None else None,
            "size": batch.size,
            **batch.params,
        },
    )
    return batch


def _nothing_message(plan: Plan) -> str:
    if plan.strategy == "hard_negative" and plan.mode == "labeled":
        return (
            f"no eligible image has an accepted {plan.task!r} label other than {plan.class_name!r}"
        )
    return (
        f"no eligible images for task {plan.task!r}: every ok image is labeled, in an open "
        "batch, or held out with its duplicates"
    )


def batch_out(session: Session, batch: Batch) -> BatchOut:
    """A batch with its items in pick order."""
    mv = session.get(ModelVersion, batch.model_version_id) if batch.model_version_id else None
    queue = session.get(Queue, batch.queue_id) if batch.queue_id else None
    items = session.execute(
        select(BatchItem.image_id, Image.sha256, Image.uri, BatchItem.position, BatchItem.score)
        .join(Image, Image.id == BatchItem.image_id)
        .where(BatchItem.batch_id == batch.id)
        .order_by(BatchItem.position, BatchItem.id)
    )
    return BatchOut(
        id=batch.id,
        status=batch.status,
        purpose=batch.purpose,
        strategy=batch.strategy,
        params=dict(batch.params),
        seed=batch.seed,
        model=_model_ref(mv) if mv is not None else None,
        queue=queue.name if queue is not None else None,
        size=batch.size,
        overlap=batch.overlap,
        gold=batch.gold,
        requested_by=batch.requested_by,
        created_at=batch.created_at,
        items=[
            BatchItemOut(image_id=i, sha256=sha, uri=uri, position=pos, score=score)
            for i, sha, uri, pos, score in items
        ],
    )


def get_batch_out(session: Session, batch_id: int) -> BatchOut:
    from dataops.selection.lifecycle import get_batch

    return batch_out(session, get_batch(session, batch_id))


SELECT_PARAMS = (
    "strategy",
    "size",
    "purpose",
    "seed",
    "model",
    "class_name",
    "mode",
    "queue",
    "stratify_by",
    "task",
    "allow_partial",
)


def run_select_job(ctx: Any) -> dict[str, Any]:
    """Job handler: params are select_batch's keyword arguments; a redelivered job reuses its batch.

    `batches.job_id` is unique: of two attempts racing, the second one's insert waits for the
    first to commit and then fails, and that attempt answers with the first one's batch.
    """
    from dataops.jobs.runner import pause_point

    try:
        with ctx.session() as session:
            existing = session.scalar(select(Batch).where(Batch.job_id == ctx.job_id))
            batch = existing or select_batch(
                session,
                **{k: ctx.params[k] for k in SELECT_PARAMS if k in ctx.params},
                actor=ctx.actor,
                job_id=ctx.job_id,
            )
            pause_point("select.before_commit")
            out = batch_out(session, batch)
    except IntegrityError:
        with ctx.session() as session:
            batch = session.scalar(select(Batch).where(Batch.job_id == ctx.job_id))
            if batch is None:
                raise
            out = batch_out(session, batch)
    return out.model_dump(mode="json")
