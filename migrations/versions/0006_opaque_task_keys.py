"""labeling: opaque task keys, the same shape for gold and regular work

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("batch_item_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("is_gold", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_task_keys_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["batch_item_id"],
            ["batch_items.id"],
            name=op.f("fk_task_keys_batch_item_id_batch_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_task_keys_image_id_images")
        ),
        sa.ForeignKeyConstraint(
            ["queue_id"], ["queues.id"], name=op.f("fk_task_keys_queue_id_queues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_keys")),
        sa.UniqueConstraint("batch_item_id", name=op.f("uq_task_keys_batch_item_id")),
        sa.UniqueConstraint("key", name=op.f("uq_task_keys_key")),
    )
    with op.batch_alter_table("task_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_keys_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_keys_image_id"), ["image_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_keys_queue_id"), ["queue_id"], unique=False)
    # Tasks already in Label Studio keep the key they were pushed with.
    op.execute(
        "INSERT INTO task_keys (key, batch_item_id, batch_id, image_id, queue_id, is_gold, "
        "created_at) SELECT bi.item_key, bi.id, bi.batch_id, bi.image_id, b.queue_id, "
        "bi.is_gold, COALESCE(bi.pushed_at, b.created_at) FROM batch_items bi "
        "JOIN batches b ON b.id = bi.batch_id "
        "WHERE bi.ls_task_id IS NOT NULL AND b.queue_id IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("task_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_keys_queue_id"))
        batch_op.drop_index(batch_op.f("ix_task_keys_image_id"))
        batch_op.drop_index(batch_op.f("ix_task_keys_batch_id"))
    op.drop_table("task_keys")
