"""dup_views: each image's view hashes (inside borders, centre and corner crops), computed once

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row per image: the packed pHash/dHash of its views (empty when unreadable), so a
    # dedup run decodes an image for its views once, never again.
    op.create_table(
        "dup_views",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("codes", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_dup_views_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_id", name=op.f("pk_dup_views")),
    )


def downgrade() -> None:
    op.drop_table("dup_views")
