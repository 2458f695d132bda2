"""append-only tables refuse TRUNCATE too

PostgreSQL fires no row trigger on TRUNCATE; a statement-level trigger on each append-only
table refuses it (including ``TRUNCATE ... CASCADE`` from a referenced table). SQLite has no
TRUNCATE statement, so this revision changes nothing there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from _triggers import guard_truncate, unguard_truncate

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


APPEND_ONLY = ("audit_events", "audits", "manifests", "manifest_rows")


def upgrade() -> None:
    for table in APPEND_ONLY:
        guard_truncate(table)


def downgrade() -> None:
    for table in APPEND_ONLY:
        unguard_truncate(table)
