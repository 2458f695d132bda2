"""an index on the gold items of each batch, so a performance report finds whether an answer
is on a gold item without reading the batch item of every answer

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

NAME = "ix_batch_items_gold"


def upgrade() -> None:
    op.create_index(
        NAME,
        "batch_items",
        ["batch_id", "image_id"],
        unique=False,
        postgresql_where=sa.text("is_gold IS true"),
        sqlite_where=sa.text("is_gold IS 1"),
    )


def downgrade() -> None:
    op.drop_index(NAME, table_name="batch_items")
