"""The schema is built only by migrations, on both backends, with no drift between models and revisions."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DatabaseError

from dataops import migrate
from dataops.db import get_engine


def test_single_head() -> None:
    assert len(migrate.heads()) == 1


def test_upgrade_check_downgrade_upgrade(catalog: str) -> None:
    migrate.check(catalog)  # raises on drift between ORM models and migrations
    assert migrate.current_revision(catalog) == migrate.heads()[0]
    migrate.downgrade(catalog, "base")
    assert set(inspect(get_engine(catalog)).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(catalog)
    migrate.check(catalog)
    assert "images" in inspect(get_engine(catalog)).get_table_names()


def test_audit_events_are_append_only(catalog: str) -> None:
    engine = get_engine(catalog)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (at, actor, action, entity_type, entity_id, details) "
                "VALUES (CURRENT_TIMESTAMP, 'a', 'x', 'job', '1', '{}')"
            )
        )
    for statement in ("UPDATE audit_events SET actor = 'b'", "DELETE FROM audit_events"):
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT actor FROM audit_events")).scalar_one() == "a"
