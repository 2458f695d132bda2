"""an index on when each batch answer was given (Label Studio's updated_at, else when dataops
recorded it), so a performance report reads only its period's answers

Without it a 30-day report scanned every label version of the catalog.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_label_versions_answered_at"


def upgrade() -> None:
    op.create_index(
        NAME,
        "label_versions",
        [sa.text("coalesce(source_updated_at, created_at)")],
        unique=False,
        postgresql_where=sa.text("batch_id IS NOT NULL"),
        sqlite_where=sa.text("batch_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(NAME, table_name="label_versions")
