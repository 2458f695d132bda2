"""Label Studio facts that are no label versions: annotations a vendor skipped."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dataops.database.base import Base, BigIntPK, utcnow
from dataops.database.dialect import UTCDateTime


class SkippedAnnotation(Base):
    """One skipped (cancelled) annotation version: no label, but proof that the task was seen.

    Keyed like a label version on (source, source id, updated_at), so a repeated pull records
    a skip once and a later edit of the same annotation records it again. Each row is also
    written to the audit log as a ``label.skipped`` event.
    """

    __tablename__ = "skipped_annotations"
    __table_args__ = (
        UniqueConstraint("source", "source_id", "source_updated_at"),
        Index("ix_skipped_annotations_batch_id", "batch_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    item_key: Mapped[str] = mapped_column(String(64))
    annotator_id: Mapped[int | None] = mapped_column(ForeignKey("annotators.id"))
    source: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(128))
    source_updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
