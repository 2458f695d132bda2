"""What differs between SQLite and PostgreSQL, written once.

Services call these instead of branching on ``dialect.name`` themselves: an upsert-capable
INSERT, row locks, a transaction-scoped write lock, and timestamps that come back in UTC on
both backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVarTuple

from sqlalchemy import DateTime, Engine, Select, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

_Row = TypeVarTuple("_Row")


def name(bind: Session | Engine) -> str:
    """``"postgresql"`` or ``"sqlite"``."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return engine.dialect.name


def is_postgres(bind: Session | Engine) -> bool:
    return name(bind) == "postgresql"


def is_sqlite(bind: Session | Engine) -> bool:
    return name(bind) == "sqlite"


def insert(session: Session, table: Any) -> Any:
    """INSERT that supports ``on_conflict_do_nothing`` / ``on_conflict_do_update`` and
    ``returning`` on both backends (same method names in both dialects)."""
    return (postgresql.insert if is_postgres(session) else sqlite.insert)(table)


def lock_rows(stmt: Select[*_Row], *, skip_locked: bool = False) -> Select[*_Row]:
    """``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite ignores it (one writer at a time)."""
    return stmt.with_for_update(skip_locked=skip_locked)


def advisory_xact_lock(session: Session, key: int) -> None:
    """Serialise a kind of work until the caller's transaction ends. PostgreSQL: an advisory
    lock; SQLite: nothing to do, its single writer already serialises writes."""
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def custom_plans(session: Session) -> None:
    """Plan each statement with its own parameter values until the transaction ends.

    psycopg prepares a statement after five runs and PostgreSQL may then keep a generic plan
    that ignores the values; for a report whose date range decides whether a hash join or a
    nested loop is right, that plan can be slower by orders of magnitude. SQLite: nothing.
    """
    if is_postgres(session):
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


@contextmanager
def no_lock_wait(session: Session, *, wait_ms: int = 100) -> Iterator[None]:
    """Statements inside fail at once (OperationalError) instead of waiting for another
    transaction's locks: for optional writes, such as a read storing what it computed.
    PostgreSQL: a transaction-local lock_timeout; SQLite: no busy wait."""
    if is_postgres(session):
        previous = session.scalar(text("SELECT current_setting('lock_timeout')"))
        session.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": f"{wait_ms}ms"})
        try:
            yield
        finally:
            session.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": previous})
        return
    previous = int(session.scalar(text("PRAGMA busy_timeout")) or 0)
    session.execute(text("PRAGMA busy_timeout = 0"))
    try:
        yield
    finally:
        session.execute(text(f"PRAGMA busy_timeout = {previous}"))


def reserve_id(session: Session, table: Any) -> int:
    """The id the next row of ``table`` will get, taken before the insert (for rows that must
    name their own id, e.g. in file names, and cannot be updated afterwards). PostgreSQL: the
    serial's next value; SQLite: max + 1, safe once the caller has written in its transaction
    (it then holds the database's only write lock)."""
    if is_sqlite(session):
        return int(session.scalar(select(func.max(table.c.id))) or 0) + 1
    return int(
        session.scalar(
            text("SELECT nextval(pg_get_serial_sequence(:table, 'id'))"), {"table": table.name}
        )
    )


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime: naive values are taken to be UTC (SQLite returns them so)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp column that stores UTC and always reads back as an aware UTC datetime
    (SQLite drops the zone; PostgreSQL's ``timestamptz`` keeps it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return as_utc_or_none(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return as_utc_or_none(value)
