"""batch_counts: each batch's progress counts, kept until one of its items or labels changes

Queue progress sums these rows instead of re-counting every label version of every batch.
Triggers on batch_items and label_versions delete a batch's row whenever any of its items
or label versions is written, so a row, when present, is what a fresh count would give; the
next read counts the batch again. An index on the time an answer was given (Label Studio's
last edit, else when dataops stored it) serves answers per day.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = (
    "items",
    "sent",
    "answered",
    "accepted",
    "rejected",
    "answers",
    "overlap_items",
    "gold_items",
)
_TABLES = ("batch_items", "label_versions")


def upgrade() -> None:
    op.create_table(
        "batch_counts",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS],
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_batch_counts_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_batch_counts")),
    )
    op.create_index(
        "ix_label_versions_answered_at",
        "label_versions",
        [sa.text("coalesce(source_updated_at, created_at)")],
        unique=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION batch_counts_stale() RETURNS trigger AS $$
            BEGIN
                IF TG_OP <> 'INSERT' THEN
                    DELETE FROM batch_counts WHERE batch_id = OLD.batch_id;
                END IF;
                IF TG_OP <> 'DELETE' THEN
                    DELETE FROM batch_counts WHERE batch_id = NEW.batch_id;
                END IF;
                RETURN NULL;
            END $$ LANGUAGE plpgsql
            """
        )
        for table in _TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_batch_counts_stale AFTER INSERT OR UPDATE OR DELETE "
                f"ON {table} FOR EACH ROW EXECUTE FUNCTION batch_counts_stale()"
            )
        return
    for table in _TABLES:
        for event, rows in (
            ("INSERT", ("NEW",)),
            ("UPDATE", ("OLD", "NEW")),
            ("DELETE", ("OLD",)),
        ):
            ids = ", ".join(f"{row}.batch_id" for row in rows)
            op.execute(
                f"CREATE TRIGGER {table}_batch_counts_stale_{event.lower()} AFTER {event} "
                f"ON {table} BEGIN DELETE FROM batch_counts WHERE batch_id IN ({ids}); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_batch_counts_stale ON {table}")
        op.execute("DROP FUNCTION IF EXISTS batch_counts_stale()")
    else:
        for table in _TABLES:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_batch_counts_stale_{event}")
    op.drop_index("ix_label_versions_answered_at", table_name="label_versions")
    op.drop_table("batch_counts")
