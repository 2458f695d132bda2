"""dup_edges.stage: which dedup stage matched each pair (hash, view, geometric, semantic)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Edges written before this revision came from the hash stage (or the semantic one,
    # whose edges already say so in ``method``).
    with op.batch_alter_table("dup_edges", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stage", sa.String(length=16), nullable=False, server_default="hash")
        )
    op.execute("UPDATE dup_edges SET stage = 'semantic' WHERE method = 'semantic'")


def downgrade() -> None:
    with op.batch_alter_table("dup_edges", schema=None) as batch_op:
        batch_op.drop_column("stage")
