"""Migration 0008 turns the skips recorded only as ``label.skipped`` events into rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select, text

from dataops import migrate
from dataops.db import get_engine, session_scope


def _skip_event(batch_id: int, image_id: int, source_id: str, stamp: str) -> dict[str, object]:
    return {
        "actor": "labelstudio:default",
        "action": "label.skipped",
        "entity_type": "batch",
        "entity_id": str(batch_id),
        "details": json.dumps(
            {
                "source": "labelstudio",
                "source_id": source_id,
                "source_updated_at": stamp,
                "item_key": f"key-{source_id}",
                "image_id": image_id,
                "annotator_id": None,
            }
        ),
    }


def test_skip_events_are_copied_once_into_the_table(catalog: str) -> None:
    from dataops.catalog.models import Image
    from dataops.labelstudio.models import SkippedAnnotation
    from dataops.selection.models import Batch

    with session_scope() as session:
        image = Image(sha256="a" * 64, uri="file:///a.jpg")
        batch = Batch(purpose="active_learning", strategy="random")
        session.add_all([image, batch])
        session.flush()
        image_id, batch_id = image.id, batch.id
    migrate.downgrade(catalog, "0007")
    events = [
        _skip_event(batch_id, image_id, "default:7", "2026-11-02T10:00:00.123456+00:00"),
        # The same version recorded twice (two pulls raced): one row.
        _skip_event(batch_id, image_id, "default:7", "2026-11-02T10:00:00.123456+00:00"),
        # An edit of the same annotation, skipped again: a second row.
        _skip_event(batch_id, image_id, "default:7", "2026-11-02T11:00:00+00:00"),
        # A batch that no longer exists: the event stays in the log only.
        _skip_event(batch_id + 99, image_id, "default:8", "2026-11-02T10:00:00+00:00"),
    ]
    with get_engine(catalog).begin() as conn:
        for event in events:
            conn.execute(
                text(
                    "INSERT INTO audit_events (at, actor, action, entity_type, entity_id, "
                    "details) VALUES (CURRENT_TIMESTAMP, :actor, :action, :entity_type, "
                    ":entity_id, :details)"
                ),
                event,
            )
    migrate.upgrade(catalog)
    with session_scope() as session:
        rows = session.scalars(select(SkippedAnnotation).order_by(SkippedAnnotation.id)).all()
        got = [(r.batch_id, r.image_id, r.source_id, r.source_updated_at, r.item_key) for r in rows]
    assert got == [
        (
            batch_id,
            image_id,
            "default:7",
            datetime(2026, 11, 2, 10, 0, 0, 123456, tzinfo=UTC),
            "key-default:7",
        ),
        (batch_id, image_id, "default:7", datetime(2026, 11, 2, 11, tzinfo=UTC), "key-default:7"),
    ]
