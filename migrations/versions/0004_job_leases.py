"""jobs: one outcome per job, leases independent of progress

A job row carries a lease (owner, expiry) renewed by a heartbeat while its handler runs and
counters that add up across attempts; a batch names the job that created it, at most once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("jobs", sa.Column("lease_owner", sa.String(128), nullable=True))
    op.add_column("jobs", sa.Column("lease_expires_at", TS, nullable=True))
    op.add_column(
        "jobs", sa.Column("counters", JSON, nullable=False, server_default=sa.text("'{}'"))
    )
    op.add_column("batches", sa.Column("job_id", sa.String(32), nullable=True))
    # Batches made before the column existed name their job in params; the oldest one wins.
    if op.get_bind().dialect.name == "postgresql":
        job_of = "b.params ->> 'job_id'"
    else:
        job_of = "json_extract(b.params, '$.job_id')"
    op.execute(
        f"UPDATE batches SET job_id = (SELECT {job_of} FROM batches b WHERE b.id = batches.id) "
        f"WHERE id IN (SELECT min(b.id) FROM batches b WHERE {job_of} IS NOT NULL "
        f"GROUP BY {job_of})"
    )
    op.create_index(op.f("ix_batches_job_id"), "batches", ["job_id"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_batches_job_id"), table_name="batches")
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("job_id")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("counters")
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
