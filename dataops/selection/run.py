"""Selecting a batch: rank the eligible pool with the request's strategy, claim, record.

Scores come from the stored predictions of a model version (uncertainty columns, or the
probability of the class for hard negatives), embeddings from the version's embedding store.
A cold start (no model) picks at random, or k-center over the 64 bits of each image's
perceptual hash, so the first batch spreads over visually different images. k-center starts
from the images already labeled or in flight, so a batch fills the gaps they leave.

Concurrency: the batch row is written first (on SQLite that takes the write lock, so
selections run one after another). Picks are claimed in rank order: on PostgreSQL the image
rows are locked ``FOR UPDATE SKIP LOCKED`` and claims inserted ``ON CONFLICT DO NOTHING``;
only rows actually claimed become items. What a concurrent selection took is replaced by the
next-ranked candidates, so the batch still reaches its size when enough images are eligible.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import insert, literal, select
from sqlalchemy.orm import Session

from dataops.catalog.models import OK, Image
from dataops.database import dialect
from dataops.db import utcnow
from dataops.events import service as events
from dataops.selection import strategies
from dataops.selection.errors import NothingEligible, NotScored, TooFewEligible
from dataops.selection.errors import literal as lit
from dataops.selection.models import Batch, BatchItem, ImageClaim
from dataops.selection.plan import Plan, model_ref, plan_selection
from dataops.selection.pool import CHUNK, Pool, eligible_pool, labeled_images, one_per_group
from dataops.selection.registry import Candidates, Rows
from dataops.selection.schemas import SelectRequest

Ranker = Callable[[int], Rows]


def _bits(hashes: NDArray[np.int64]) -> NDArray[np.float32]:
    from dataops.catalog.hashing import to_codes

    if len(hashes) == 0:
        return np.empty((0, 64), np.float32)
    return np.unpackbits(to_codes(hashes), axis=1).astype(np.float32)


def _covered_images(session: Session, task: str) -> list[int]:
    """Images already labeled for the task or in flight: what k-center starts from."""
    labeled = set(session.scalars(labeled_images(task)))
    claimed = set(session.scalars(select(ImageClaim.image_id)))
    return sorted(labeled | claimed)


def _embeddings(
    session: Session, plan: Plan, pool: Pool
) -> tuple[NDArray[np.float32], NDArray[np.float32], str]:
    """(pool vectors, vectors of covered images, space name) for the embedding strategies."""
    covered = _covered_images(session, plan.task)
    if plan.has_embeddings:
        from dataops.scoring.embeddings import EmbeddingStore

        assert plan.model is not None
        store = EmbeddingStore.of(plan.model)
        vectors, missing = store.vectors_for(pool.image_ids)
        if missing.any():
            ref = model_ref(plan.model)
            raise NotScored(
                f"{int(missing.sum())} of {len(pool)} eligible images have no stored embedding "
                f"from {ref}; run `dataops score --model {ref}` first (it also rebuilds lost "
                "embeddings)"
            )
        known, known_missing = store.vectors_for(np.asarray(covered, dtype=np.int64))
        return vectors, known[~known_missing], "embedding"
    hashes = [
        h
        for start in range(0, len(covered), CHUNK)
        for h in session.scalars(
            select(Image.phash).where(
                Image.id.in_(covered[start : start + CHUNK]), Image.phash.is_not(None)
            )
        )
    ]
    assert pool.phash is not None
    return _bits(pool.phash), _bits(np.array(hashes, dtype=np.int64)), "phash"


def _ranker(session: Session, plan: Plan, pool: Pool) -> tuple[Ranker, dict[str, Any]]:
    """A function m -> the first m picks, in rank order, plus what the batch records about it."""
    info: dict[str, Any] = {}
    if plan.rule.flagged_labels:
        from dataops.quality.service import latest_run

        info["label_quality_run"] = latest_run(session, plan.task, None).id
    candidates = Candidates(n=len(pool), seed=plan.seed, scores=pool.scores, probs=pool.probs)
    if plan.rule.spreads:
        vectors, covered, space = _embeddings(session, plan, pool)
        info["space"] = space
        candidates = Candidates(
            n=len(pool),
            seed=plan.seed,
            scores=pool.scores,
            probs=pool.probs,
            embeddings=vectors,
            labeled_embeddings=covered,
        )
    run = plan.rule.run

    def inner(rows: Rows, m: int) -> Rows:
        picked: Rows = rows[run(candidates.take(rows), m)]
        return picked

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
    stmt = (
        dialect.insert(session, ImageClaim)
        .from_select(
            ["image_id", "batch_id", "claimed_at"], dialect.lock_rows(rows, skip_locked=True)
        )
        .on_conflict_do_nothing(index_elements=["image_id"])
        .returning(ImageClaim.image_id)
    )
    return set(session.scalars(stmt))


def _claim_ranked(
    session: Session, batch_id: int, pool: Pool, rank: Ranker, size: int
) -> list[int]:
    """Claim picks in rank order; picks lost to a concurrent batch are topped up from the next."""
    from dataops.jobs.runner import pause_point

    pause_point("select.before_claim")
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
    request: SelectRequest,
    *,
    actor: str | None = None,
    job_id: str | None = None,
) -> Batch:
    """Create a draft batch of ``request.size`` eligible images picked by its strategy.

    Deterministic for the same catalog, request and seed. Raises ``NotScored`` when the
    strategy needs predictions or embeddings the model version has not produced for every
    eligible image, ``NothingEligible`` when no image can be handed out, and
    ``TooFewEligible`` when fewer than ``size`` are eligible and ``allow_partial`` is off (a
    typo must not quietly claim every eligible image). Concurrent selections can still leave
    a batch short: what another batch took first is not counted as eligible here.
    """
    plan = plan_selection(session, request)
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
    pool = _rankable(plan, candidates)
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
        **({"class": plan.class_name, "mode": plan.mode} if plan.rule.needs_class else {}),
        **({"stratify_by": plan.stratify_by} if plan.stratify_by else {}),
        **({"job_id": job_id} if job_id else {}),
        **info,
    }
    session.flush()
    _record(session, plan, batch, actor)
    return batch


def _rankable(plan: Plan, candidates: Pool) -> Pool:
    """The candidates a strategy may rank, one per duplicate group; refuses a pool that
    lacks predictions the strategy needs, is empty, or is smaller than asked for."""
    if plan.rule.needs_model and not candidates.scored.all():
        assert plan.model is not None
        ref = model_ref(plan.model)
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
            f"only {len(pool)} images are eligible for task {lit(repr(plan.task))} but the "
            f"batch asks for {plan.size}; ask for at most {len(pool)}, or pass "
            "{allow_partial} to take them all",
            fields=("allow_partial",),
        )
    return pool


def _record(session: Session, plan: Plan, batch: Batch, actor: str | None) -> None:
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
            "model": model_ref(plan.model) if plan.model is not None else None,
            "queue": plan.queue.name if plan.queue is not None else None,
            "size": batch.size,
            **batch.params,
        },
    )


def _nothing_message(plan: Plan) -> str:
    if plan.rule.needs_class and plan.mode == "labeled":
        return (
            f"no eligible image has an accepted {plan.task!r} label other than {plan.class_name!r}"
        )
    return (
        f"no eligible images for task {plan.task!r}: every ok image is labeled, in an open "
        "batch, or held out with its duplicates"
    )
