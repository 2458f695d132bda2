"""label_quality_runs and label_quality: label issues found by confident learning

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "label_quality_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("params", JSON, nullable=False),
        sa.Column("classes", JSON, nullable=False),
        sa.Column("labels", sa.Integer(), nullable=False),
        sa.Column("issues", sa.Integer(), nullable=False),
        sa.Column("per_class", JSON, nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_label_quality_runs_model_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_quality_runs")),
        sa.UniqueConstraint("job_id", name=op.f("uq_label_quality_runs_job_id")),
    )
    op.create_index("ix_label_quality_runs_task", "label_quality_runs", ["task"])
    op.create_table(
        "label_quality",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("label_version_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("given_class", sa.String(length=128), nullable=False),
        sa.Column("suggested_class", sa.String(length=128), nullable=False),
        sa.Column("quality", sa.Double(), nullable=False),
        sa.Column("is_issue", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["label_quality_runs.id"],
            name=op.f("fk_label_quality_run_id_label_quality_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["label_version_id"],
            ["label_versions.id"],
            name=op.f("fk_label_quality_label_version_id_label_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_label_quality_image_id_images")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_quality")),
        sa.UniqueConstraint(
            "run_id", "label_version_id", name=op.f("uq_label_quality_run_id_label_version_id")
        ),
    )
    op.create_index("ix_label_quality_run_id_quality", "label_quality", ["run_id", "quality"])
    op.create_index("ix_label_quality_label_version_id", "label_quality", ["label_version_id"])
    op.create_index("ix_label_quality_image_id", "label_quality", ["image_id"])


def downgrade() -> None:
    op.drop_index("ix_label_quality_image_id", table_name="label_quality")
    op.drop_index("ix_label_quality_label_version_id", table_name="label_quality")
    op.drop_index("ix_label_quality_run_id_quality", table_name="label_quality")
    op.drop_table("label_quality")
    op.drop_index("ix_label_quality_runs_task", table_name="label_quality_runs")
    op.drop_table("label_quality_runs")
