"""label_versions.lead_time: seconds the annotator spent on an answer (Label Studio's
lead_time), and an index on supersedes_id to find the live end of each chain

Annotator performance reports the median time per answer from this column; versions pulled
before this revision have none (NULL) and are left out of that median.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTERs, no batch copy: label_versions keeps its append-only triggers on SQLite.
    op.add_column("label_versions", sa.Column("lead_time", sa.Double(), nullable=True))
    op.create_index(
        op.f("ix_label_versions_supersedes_id"), "label_versions", ["supersedes_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_label_versions_supersedes_id"), table_name="label_versions")
    with op.batch_alter_table("label_versions", schema=None) as batch_op:
        batch_op.drop_column("lead_time")
