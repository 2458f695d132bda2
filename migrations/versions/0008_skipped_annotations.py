"""skipped_annotations: Label Studio skips as rows, filled from the label.skipped events

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)

# One row per skipped annotation version, the first event that recorded it; events whose
# batch or image is gone are left in the log only.
_BACKFILL = """
INSERT INTO skipped_annotations (
    batch_id, image_id, item_key, annotator_id, source, source_id, source_updated_at,
    recorded_at
)
SELECT b.id, i.id, e.item_key, a.id, e.source, e.source_id, e.source_updated_at, e.at
FROM (
    SELECT {batch_id} AS batch_id, {image_id} AS image_id, {item_key} AS item_key,
           {annotator_id} AS annotator_id, {source} AS source, {source_id} AS source_id,
           {stamp} AS source_updated_at, at
    FROM audit_events
    WHERE id IN (
        SELECT MIN(id) FROM audit_events
        WHERE action = 'label.skipped' AND entity_type = 'batch'
        GROUP BY {group}
    )
) e
JOIN batches b ON b.id = e.batch_id
JOIN images i ON i.id = e.image_id
LEFT JOIN annotators a ON a.id = e.annotator_id
WHERE e.source_id IS NOT NULL AND e.source_updated_at IS NOT NULL AND e.item_key IS NOT NULL
"""


def _backfill_sql(dialect: str) -> str:
    if dialect == "postgresql":

        def field(name: str) -> str:
            return f"(details->>'{name}')"

        def number(name: str) -> str:
            value = field(name)
            return f"(CASE WHEN {value} ~ '^[0-9]+$' THEN {value}::bigint END)"

        stamp = f"{field('source_updated_at')}::timestamptz"
        batch_id = "(CASE WHEN entity_id ~ '^[0-9]+$' THEN entity_id::bigint END)"
    else:

        def field(name: str) -> str:
            return f"json_extract(details, '$.{name}')"

        def number(name: str) -> str:
            return f"CAST({field(name)} AS INTEGER)"

        # Stored like SQLAlchemy writes SQLite timestamps: UTC, space, six fraction digits.
        raw = field("source_updated_at")
        stamp = (
            f"strftime('%Y-%m-%d %H:%M:%S', {raw}) || CASE WHEN instr({raw}, '.') > 0 "
            f"THEN substr({raw}, instr({raw}, '.'), 7) ELSE '.000000' END"
        )
        batch_id = "CAST(entity_id AS INTEGER)"
    return _BACKFILL.format(
        batch_id=batch_id,
        image_id=number("image_id"),
        item_key=field("item_key"),
        annotator_id=number("annotator_id"),
        source=f"COALESCE({field('source')}, 'labelstudio')",
        source_id=field("source_id"),
        stamp=stamp,
        group=f"{field('source_id')}, {field('source_updated_at')}",
    )


def upgrade() -> None:
    op.create_table(
        "skipped_annotations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("item_key", sa.String(length=64), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("source_updated_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["annotator_id"],
            ["annotators.id"],
            name=op.f("fk_skipped_annotations_annotator_id_annotators"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_skipped_annotations_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_skipped_annotations_image_id_images")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skipped_annotations")),
        sa.UniqueConstraint(
            "source",
            "source_id",
            "source_updated_at",
            name=op.f("uq_skipped_annotations_source_source_id_source_updated_at"),
        ),
    )
    op.create_index("ix_skipped_annotations_batch_id", "skipped_annotations", ["batch_id"])
    op.execute(_backfill_sql(op.get_bind().dialect.name))


def downgrade() -> None:
    op.drop_index("ix_skipped_annotations_batch_id", table_name="skipped_annotations")
    op.drop_table("skipped_annotations")
