from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from dataops.database.base import Base, utcnow

PURPOSES = ("active_learning", "hard_negative", "audit", "relabel", "cold_start")
OPEN_STATUSES = ("draft", "sent", "in_progress", "delivered")
STATUSES = (*OPEN_STATUSES, "accepted", "rejected", "cancelled")


class Batch(Base):
    """A reproducible request: strategy, params, seed and model version decide its items."""

    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32))
    strategy: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seed: Mapped[int] = mapped_column(default=0)
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id"), default=None
    )
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id"), index=True, default=None)
    parent_batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), default=None)
    size: Mapped[int] = mapped_column(default=0)
    overlap: Mapped[float] = mapped_column(default=0.0)
    gold: Mapped[float] = mapped_column(default=0.0)
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    requested_by: Mapped[str | None] = mapped_column(String(128), default=None)
    due_at: Mapped[datetime | None] = mapped_column(default=None)
    ls_project_id: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    # The select job that made this batch: unique, so redeliveries cannot make a second one.
    job_id: Mapped[str | None] = mapped_column(String(32), unique=True, index=True, default=None)


class BatchItem(Base):
    """One image in a batch; `item_key` is our idempotency key in Label Studio task data."""

    __tablename__ = "batch_items"
    __table_args__ = (
        UniqueConstraint("batch_id", "image_id"),
        # The gold items of a batch: performance reports probe it once per answer (0017).
        Index(
            "ix_batch_items_gold",
            "batch_id",
            "image_id",
            postgresql_where=text("is_gold IS true"),
            sqlite_where=text("is_gold IS 1"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    item_key: Mapped[str] = mapped_column(String(64), unique=True)
    position: Mapped[int] = mapped_column(default=0)
    score: Mapped[float | None] = mapped_column(default=None)
    is_overlap: Mapped[bool] = mapped_column(default=False)
    is_gold: Mapped[bool] = mapped_column(default=False)
    gold_label_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("label_versions.id"), default=None
    )
    required_annotations: Mapped[int] = mapped_column(default=1)
    ls_task_id: Mapped[int | None] = mapped_column(default=None)
    pushed_at: Mapped[datetime | None] = mapped_column(default=None)


class ImageClaim(Base):
    """An image handed to an open batch; the primary key makes double allocation impossible."""

    __tablename__ = "image_claims"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
