"""image locations whose bytes no longer match are marked stale

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stale_locations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("found_sha256", sa.String(64), nullable=True),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_stale_locations_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stale_locations")),
        sa.UniqueConstraint("image_id", "uri", name=op.f("uq_stale_locations_image_id_uri")),
    )
    op.create_index(op.f("ix_stale_locations_image_id"), "stale_locations", ["image_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_stale_locations_image_id"), table_name="stale_locations")
    op.drop_table("stale_locations")
