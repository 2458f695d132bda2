"""Concurrent `select` calls never hand out the same image, and still fill their batches.

The PostgreSQL test makes every selection read the catalog and rank the same candidates
before any of them claims one, so each call must skip the rows the others hold
(``FOR UPDATE SKIP LOCKED`` + ``ON CONFLICT DO NOTHING``) and top up from further down.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from dataops.catalog.models import Image
from dataops.db import session_scope
from dataops.jobs import runner
from dataops.scoring.models import ModelVersion, Prediction
from dataops.selection import run
from dataops.selection.errors import NothingEligible
from dataops.selection.models import BatchItem, ImageClaim
from dataops.selection.schemas import select_request

ELIGIBLE = 60


def seed_catalog(n: int) -> None:
    """n ok images, all scored by one model version; margins all different."""
    with session_scope() as session:
        mv = ModelVersion(
            name="m",
            version=1,
            sha256="0" * 64,
            blob_key="00/" + "0" * 64,
            classes=["a", "b"],
            input_spec={"size": [8, 8], "mean": [0.0], "std": [1.0], "channels": 1},
            is_current=True,
        )
        session.add(mv)
        for i in range(n):
            sha = hashlib.sha256(f"image-{i}".encode()).hexdigest()
            session.add(Image(sha256=sha, uri=f"/data/{i}.png", status="ok"))
        session.flush()
        for position, image_id in enumerate(session.scalars(select(Image.id).order_by(Image.id))):
            p = 0.5 + 0.5 * position / n
            session.add(
                Prediction(
                    model_version_id=mv.id,
                    image_id=image_id,
                    probs=[p, 1 - p],
                    predicted_class="a",
                    predicted_score=p,
                    least_confidence=1 - p,
                    margin=1 - (2 * p - 1),
                    entropy=0.0,
                )
            )


def run_concurrently(calls: int, target: Callable[[int], Any]) -> list[Any]:
    results: list[Any] = [None] * calls
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a selection hung"
    assert not errors, errors
    return results


def select_ids(strategy: str, size: int, seed: int) -> list[int]:
    """The batch's image ids in pick order; none when the others already took everything."""
    with session_scope() as session:
        try:
            request = select_request({"strategy": strategy, "size": size, "seed": seed})
            batch = run.select_batch(session, request, actor="test")
        except NothingEligible:
            return []
        return list(
            session.scalars(
                select(BatchItem.image_id)
                .where(BatchItem.batch_id == batch.id)
                .order_by(BatchItem.position)
            )
        )


def assert_disjoint_and_complete(batches: list[list[int]], size: int) -> None:
    handed_out = [i for batch in batches for i in batch]
    assert len(handed_out) == len(set(handed_out)), "an image went to two batches"
    assert len(handed_out) == ELIGIBLE
    assert all(len(b) <= size for b in batches)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ImageClaim)) == ELIGIBLE


@pytest.mark.postgres
@pytest.mark.parametrize(("calls", "strategy"), [(2, "margin"), (4, "margin"), (3, "random")])
def test_postgres_selections_race_for_the_same_images(
    pg_catalog: str, monkeypatch: pytest.MonkeyPatch, calls: int, strategy: str
) -> None:
    seed_catalog(ELIGIBLE)
    size = ELIGIBLE // calls + 10  # together they ask for more than there is
    everyone_ranked = threading.Barrier(calls, timeout=60)
    monkeypatch.setitem(runner.PAUSE_POINTS, "select.before_claim", everyone_ranked.wait)
    batches = run_concurrently(calls, lambda i: select_ids(strategy, size, seed=1))
    assert_disjoint_and_complete(batches, size)
    if strategy == "margin":  # lower ids are more uncertain; each batch keeps rank order
        assert all(b == sorted(b) for b in batches)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_selections_take_turns(catalog: str) -> None:
    seed_catalog(ELIGIBLE)
    size = ELIGIBLE // 3 + 10
    batches = run_concurrently(3, lambda i: select_ids("margin", size, seed=i))
    assert_disjoint_and_complete(batches, size)
