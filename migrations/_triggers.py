"""Append-only tables: the database itself refuses UPDATE, DELETE and TRUNCATE.

Row triggers refuse UPDATE and DELETE on both backends. PostgreSQL's TRUNCATE (also reached
through ``TRUNCATE other_table CASCADE``) fires no row trigger, so a statement-level trigger
refuses it too. SQLite has no TRUNCATE: its ``DELETE FROM t`` without WHERE runs the row
triggers, which refuse it.
"""

from __future__ import annotations

from alembic import op


def make_append_only(table: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{table} is append-only: % refused', TG_OP
                    USING ERRCODE = 'integrity_constraint_violation';
            END;
            $$ LANGUAGE plpgsql;
            """
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only();"
        )
        guard_truncate(table)
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {action} refused'); END;"
            )


def guard_truncate(table: str) -> None:
    """PostgreSQL: refuse TRUNCATE of an append-only table (idempotent; SQLite has none)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only();"
        )


def unguard_truncate(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};")


def drop_append_only(table: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        unguard_truncate(table)
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_change ON {table};")
        op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only();")
    else:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action};")
