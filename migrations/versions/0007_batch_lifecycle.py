"""batches: cancel, assign, per-queue task

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # relabel policy
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "on_reject", sa.String(length=16), nullable=False, server_default="relabel_failed"
            )
        )
        batch_op.add_column(
            sa.Column("relabel_answers", sa.Integer(), nullable=False, server_default="3")
        )
        batch_op.add_column(
            sa.Column("relabel_agree", sa.Integer(), nullable=False, server_default="2")
        )
        batch_op.add_column(
            sa.Column("relabel_rounds", sa.Integer(), nullable=False, server_default="2")
        )


def downgrade() -> None:
    # relabel policy
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.drop_column("relabel_rounds")
        batch_op.drop_column("relabel_agree")
        batch_op.drop_column("relabel_answers")
        batch_op.drop_column("on_reject")
