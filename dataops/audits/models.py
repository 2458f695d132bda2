from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from dataops.database.base import Base, utcnow


class Audit(Base):
    """Immutable record of one audit run and its gate decision (the database refuses changes)."""

    __tablename__ = "audits"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), index=True, default=None)
    gate: Mapped[float]
    pass_rate: Mapped[float | None] = mapped_column(default=None)
    decision: Mapped[str] = mapped_column(String(16))
    metrics: Mapped[dict[str, Any]]
    report_json_key: Mapped[str | None] = mapped_column(String(256), default=None)
    report_html_key: Mapped[str | None] = mapped_column(String(256), default=None)
    relabel_batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), default=None)
    created_by: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
