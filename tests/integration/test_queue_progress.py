"""Queue progress, the batch list and batch items against a scenario counted by hand
(tests/support/progress_world.py), on SQLite and PostgreSQL, in the domain and over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dataops.db import session_scope
from tests.support import progress_world as world
from tests.support.api import MakeUser, bearer

COUNT_FIELDS = tuple(world.ACME)


def _counts(row: Any) -> dict[str, Any]:
    data = row if isinstance(row, dict) else row.model_dump()
    return {field: data[field] for field in COUNT_FIELDS}


def test_queue_progress_counts_and_throughput(catalog: str) -> None:
    from dataops.labeling import progress
    from dataops.labeling.models import Queue

    w = world.build()
    with session_scope() as session:
        queues = progress.visible_queue_rows(session, scope_vendor=None)
        assert [q.name for q in queues] == [world.ACME_QUEUE, world.GLOBEX_QUEUE]
        acme, globex = progress.queue_progress(
            session, queues, vendor_view=False, days=3, now=w.now
        )
        assert _counts(acme) == world.ACME
        assert _counts(globex) == world.GLOBEX
        assert [d.answers for d in acme.throughput] == world.ACME_THROUGHPUT
        assert [d.answers for d in globex.throughput] == world.GLOBEX_THROUGHPUT
        assert acme.throughput[-1].day == w.now.date()
        assert (acme.batches, acme.open_batches, acme.due_days) == (3, 3, 2.0)
        assert acme.overdue is True
        assert acme.next_due_at is not None
        assert abs((acme.next_due_at - w.now).total_seconds() + 86_400) < 1
        assert (globex.overdue, globex.next_due_at) == (False, None)
        assert (acme.vendor, acme.guideline) == ("acme", "helmets:1")

        week = progress.queue_progress(session, queues[:1], vendor_view=False, days=7, now=w.now)
        assert [d.answers for d in week[0].throughput] == world.ACME_THROUGHPUT_7

        queue = session.get(Queue, w.acme_queue)
        assert queue is not None
        vendor = progress.queue_progress(session, [queue], vendor_view=True, days=3, now=w.now)[0]
        assert (vendor.overlap_items, vendor.gold_items) == (None, None)
        assert vendor.sent == world.ACME["sent"]


def test_batch_list_counts_filters_and_vendor_scope(catalog: str) -> None:
    from dataops.errors import NotFound
    from dataops.labeling import progress
    from dataops.labeling.models import Queue

    w = world.build()
    with session_scope() as session:
        everything = progress.list_batches(session, scope_vendor=None)
        assert [b.id for b in everything.batches] == [w.b1, w.a3, w.a2, w.a1]
        assert everything.total == 4
        rows = {b.id: b for b in everything.batches}
        assert _counts(rows[w.a1]) == world.A1
        assert rows[w.a1].overdue is True
        assert rows[w.a3].overdue is False
        assert (rows[w.a2].items, rows[w.a2].sent, rows[w.a2].answered) == (2, 0, 0)
        assert rows[w.a1].strategy == "least_confidence"

        page = progress.list_batches(session, scope_vendor=None, queue=world.ACME_QUEUE, limit=2)
        assert ([b.id for b in page.batches], page.total) == ([w.a3, w.a2], 3)
        drafts = progress.list_batches(session, scope_vendor=None, status="draft")
        assert [b.id for b in drafts.batches] == [w.a2]

        acme = session.get(Queue, w.acme_queue)
        assert acme is not None
        own = progress.list_batches(session, scope_vendor=acme.vendor_id)
        assert [b.id for b in own.batches] == [w.a3, w.a1]  # no draft, nothing of globex
        assert own.total == 2
        for row in own.batches:
            assert (row.overlap_items, row.gold_items, row.strategy) == (None, None, None)
        with pytest.raises(NotFound):
            progress.list_batches(session, scope_vendor=acme.vendor_id, queue=world.GLOBEX_QUEUE)


def test_batch_items_for_staff_and_vendors(catalog: str) -> None:
    from dataops.errors import NotFound
    from dataops.labeling.batch_items import batch_items
    from dataops.labeling.models import Queue

    w = world.build()
    with session_scope() as session:
        page = batch_items(session, w.a1, scope_vendor=None, limit=4)
        assert page.total == 6
        assert _counts(page.batch) == world.A1
        assert [i.image_id for i in page.items] == w.a1_images[:4]
        first, second, _third, fourth = page.items
        assert (first.is_gold, first.is_overlap, second.is_overlap) == (True, False, True)
        assert (first.predicted_class, first.predicted_score) == ("helmet", 0.8)
        assert second.predicted_class is None
        assert [(x.annotator, x.value, x.status) for x in first.labels or []] == [
            ("ann1@acme", "helmet", "accepted")
        ]
        # ann1's edit replaced their first answer; ann2's rejected answer stays beside it.
        assert sorted((x.annotator, x.value, x.status) for x in second.labels or []) == [
            ("ann1@acme", "helmet", "accepted"),
            ("ann2@acme", "none", "rejected"),
        ]
        assert fourth.labels == []  # deleted at the source
        assert first.file_name is not None and first.file_name.endswith(".jpg")
        assert first.media_url is not None and "/v1/media/t/" in first.media_url
        rest = batch_items(session, w.a1, scope_vendor=None, limit=4, offset=4)
        assert [i.image_id for i in rest.items] == w.a1_images[4:]

        acme = session.get(Queue, w.acme_queue)
        assert acme is not None
        mine = batch_items(session, w.a1, scope_vendor=acme.vendor_id)
        assert mine.total == 6
        for item in mine.items:
            shown = {k for k, v in item.model_dump().items() if v is not None}
            assert shown == {"key", "ls_task_id", "media_url"}
        assert (mine.batch.gold_items, mine.batch.overlap_items) == (None, None)
        for other in (w.b1, w.a2, 999_999):
            with pytest.raises(NotFound):
                batch_items(session, other, scope_vendor=acme.vendor_id)


def _vendor_token(make_user: MakeUser, vendor: str) -> dict[str, str]:
    return bearer(make_user("vendor", vendor=vendor))


def test_progress_routes_scope_vendors(api: TestClient, make_user: MakeUser) -> None:
    w = world.build()
    staff = bearer(make_user("labeling_ops"))
    acme = _vendor_token(make_user, "acme")

    listing = api.get("/v1/queue-progress", params={"days": 3}, headers=staff)
    assert listing.status_code == 200, listing.text
    by_name = {q["queue"]: q for q in listing.json()["queues"]}
    assert _counts(by_name[world.ACME_QUEUE]) == world.ACME
    assert [d["answers"] for d in by_name[world.GLOBEX_QUEUE]["throughput"]] == [0, 0, 1]

    one = api.get(f"/v1/queues/{world.ACME_QUEUE}/progress", params={"days": 3}, headers=staff)
    assert one.status_code == 200
    assert _counts(one.json()) == world.ACME
    assert api.get("/v1/queue-progress", params={"days": 93}, headers=staff).status_code == 422

    own = api.get("/v1/queue-progress", headers=acme).json()["queues"]
    assert [q["queue"] for q in own] == [world.ACME_QUEUE]
    assert (own[0]["overlap_items"], own[0]["gold_items"]) == (None, None)
    for path in (
        f"/v1/queues/{w.globex_queue}/progress",
        f"/v1/batches/{w.b1}/items",
        f"/v1/batches/{w.a2}/items",
    ):
        assert api.get(path, headers=acme).status_code == 404, path
    assert api.get("/v1/batches", params={"queue": w.globex_queue}, headers=acme).status_code == 404

    batches = api.get("/v1/batches", headers=acme).json()
    assert [b["id"] for b in batches["batches"]] == [w.a3, w.a1]
    items = api.get(f"/v1/batches/{w.a1}/items", headers=acme)
    assert items.status_code == 200
    body = items.text
    assert '"is_gold":null' in body.replace(" ", "")
    assert all(item["is_gold"] is None and item["labels"] is None for item in items.json()["items"])

    staff_items = api.get(f"/v1/batches/{w.a1}/items", params={"limit": 2}, headers=staff).json()
    assert staff_items["total"] == 6
    assert [i["is_gold"] for i in staff_items["items"]] == [True, False]
    all_batches = api.get("/v1/batches", params={"status": "draft"}, headers=staff).json()
    assert [b["id"] for b in all_batches["batches"]] == [w.a2]


def test_stored_counts_follow_every_write_of_a_batch(catalog: str) -> None:
    """Counts are stored per batch on read; an audit verdict (an UPDATE), a push of items and
    a new answer each drop their batch's row (migration 0015's triggers), so the next read
    counts again, while untouched batches keep theirs."""
    from sqlalchemy import select, update

    from dataops.labeling import progress
    from dataops.labeling.models import Annotator, LabelVersion, Queue
    from dataops.labeling.progress_models import BatchCounts
    from dataops.selection.models import BatchItem

    w = world.build()

    def acme() -> Any:
        with session_scope() as session:
            queue = session.get(Queue, w.acme_queue)
            assert queue is not None
            return progress.queue_progress(session, [queue], vendor_view=False, now=w.now)[0]

    def stored() -> set[int]:
        with session_scope() as session:
            return set(session.scalars(select(BatchCounts.batch_id)))

    before = acme()
    assert _counts(before) == world.ACME
    assert {w.a1, w.a2, w.a3} <= stored()
    with session_scope() as session:
        session.execute(
            update(LabelVersion)
            .where(LabelVersion.batch_id == w.a1, LabelVersion.image_id == w.a1_images[4])
            .values(status="accepted")
        )
        session.execute(update(BatchItem).where(BatchItem.batch_id == w.a2).values(ls_task_id=7))
    assert not {w.a1, w.a2} & stored()
    assert w.a3 in stored()
    after = acme()
    assert (after.accepted, after.sent) == (before.accepted + 1, before.sent + 2)

    with session_scope() as session:
        item = session.scalars(select(BatchItem).where(BatchItem.batch_id == w.a3)).first()
        annotator = session.scalars(select(Annotator)).first()
        assert item is not None and annotator is not None
        session.add(
            LabelVersion(
                image_id=item.image_id,
                annotator_id=annotator.id,
                batch_id=w.a3,
                task="helmets",
                payload={"class": "none"},
                source="labelstudio",
                source_id="default:late",
                source_key="labelstudio:default:late:x",
            )
        )
    assert w.a3 not in stored()
    latest = acme()
    assert (latest.answered, latest.answers) == (after.answered + 1, after.answers + 1)

    # A row counted while a write was committing could lag; an open batch's row is trusted
    # only for STALE_AFTER, then counted again.
    from datetime import timedelta

    with session_scope() as session:
        old = datetime.now(UTC) - progress.STALE_AFTER - timedelta(seconds=5)
        session.execute(
            update(BatchCounts)
            .where(BatchCounts.batch_id == w.a1)
            .values(accepted=999, computed_at=old)
        )
        session.execute(update(BatchCounts).where(BatchCounts.batch_id == w.a3).values(answers=999))
    again = acme()
    assert again.accepted == latest.accepted
    assert again.answers == latest.answers - 1 + 999  # a3 (1 answer) is recent: trusted


def test_a_read_never_waits_for_a_writer_to_store_counts(catalog: str) -> None:
    """While another transaction holds a batch (an audit, a push), a page still counts it
    and answers at once; storing the counts waits for a later read."""
    import time

    from sqlalchemy import delete, select, update

    from dataops.database.dialect import is_postgres
    from dataops.db import session_factory
    from dataops.labeling import progress
    from dataops.labeling.models import Queue
    from dataops.labeling.progress_models import BatchCounts
    from dataops.selection.models import Batch

    w = world.build()
    blocker = session_factory()()
    try:
        blocker.execute(delete(BatchCounts))
        blocker.commit()
        if is_postgres(blocker):
            blocker.execute(select(Batch.id).where(Batch.id == w.a1).with_for_update())
        else:  # SQLite: any write holds the catalog's one write lock
            blocker.execute(update(Batch).where(Batch.id == w.b1).values(seed=1))
        started = time.monotonic()
        with session_scope() as session:
            queue = session.get(Queue, w.acme_queue)
            assert queue is not None
            row = progress.queue_progress(session, [queue], vendor_view=False, now=w.now)[0]
        assert time.monotonic() - started < 5
        assert _counts(row) == world.ACME
        with session_scope() as session:
            assert w.a1 not in set(session.scalars(select(BatchCounts.batch_id)))
    finally:
        blocker.rollback()
        blocker.close()
    with session_scope() as session:
        queue = session.get(Queue, w.acme_queue)
        assert queue is not None
        progress.queue_progress(session, [queue], vendor_view=False, now=w.now)
    with session_scope() as session:
        assert w.a1 in set(session.scalars(select(BatchCounts.batch_id)))


def test_the_upgrade_fills_counts_as_progress_counts_them(catalog: str) -> None:
    """Migration 0016 writes the counting rules out in SQL: its rows equal a fresh count."""
    import importlib.util
    from pathlib import Path

    from sqlalchemy import delete, select, text

    from dataops.labeling import progress
    from dataops.labeling.progress_models import BatchCounts

    path = Path(__file__).parents[2] / "migrations" / "versions" / "0016_fill_batch_counts.py"
    spec = importlib.util.spec_from_file_location("fill_batch_counts", path)
    assert spec is not None and spec.loader is not None
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)

    w = world.build()
    with session_scope() as session:
        session.execute(delete(BatchCounts))
        session.execute(text(revision.FILL))
    with session_scope() as session:
        filled = {
            row.batch_id: {f: getattr(row, f) for f in COUNT_FIELDS}
            for row in session.scalars(select(BatchCounts))
        }
        assert set(filled) == {w.a1, w.a2, w.a3, w.b1}
        assert filled[w.a1] == world.A1
        assert filled == progress._count_live(session, sorted(filled))
