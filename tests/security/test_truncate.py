"""Append-only tables refuse TRUNCATE on PostgreSQL, even on an empty table and through CASCADE.

SQLite has no TRUNCATE; its whole-table DELETE runs the row triggers
(tests/integration/test_migrations.py::test_audit_events_are_append_only).
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from dataops.db import get_engine

APPEND_ONLY = ("audit_events", "audits", "manifests", "manifest_rows")


def _add_event(catalog: str) -> None:
    with get_engine(catalog).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (at, actor, action, entity_type, entity_id, details) "
                "VALUES (CURRENT_TIMESTAMP, 'a', 'x', 'job', '1', '{}')"
            )
        )


def _count(catalog: str, table: str) -> int:
    with get_engine(catalog).connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.mark.postgres
@pytest.mark.parametrize("table", APPEND_ONLY)
def test_truncate_is_refused(pg_catalog: str, table: str) -> None:
    _add_event(pg_catalog)
    refused = pytest.raises(DatabaseError, match=f"{table} is append-only: TRUNCATE refused")
    with refused, get_engine(pg_catalog).begin() as conn:
        conn.execute(text(f"TRUNCATE {table}"))
    assert _count(pg_catalog, "audit_events") == 1


@pytest.mark.postgres
def test_truncate_cascade_from_a_referenced_table_is_refused(pg_catalog: str) -> None:
    """Emptying the catalog with CASCADE would reach manifest_rows; the guard stops it."""
    _add_event(pg_catalog)
    refused = pytest.raises(DatabaseError, match="append-only: TRUNCATE refused")
    with refused, get_engine(pg_catalog).begin() as conn:
        conn.execute(text("TRUNCATE images, audit_events CASCADE"))
    assert _count(pg_catalog, "audit_events") == 1
