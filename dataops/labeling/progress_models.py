"""Stored progress counts of a batch (migration 0015), dropped by triggers whenever one of
the batch's items or label versions is written, and counted again on the next read."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, func
from sqlalchemy.orm import Mapped, mapped_column

from dataops.database.base import Base, utcnow
from dataops.labeling.models import LabelVersion


class BatchCounts(Base):
    __tablename__ = "batch_counts"

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    items: Mapped[int]
    sent: Mapped[int]
    answered: Mapped[int]
    accepted: Mapped[int]
    rejected: Mapped[int]
    answers: Mapped[int]
    overlap_items: Mapped[int]
    gold_items: Mapped[int]
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


# When an answer was given: Label Studio's last edit of it, else when dataops stored it.
ANSWERED_AT = func.coalesce(LabelVersion.source_updated_at, LabelVersion.created_at)
Index("ix_label_versions_answered_at", ANSWERED_AT)
