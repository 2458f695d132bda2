from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dataops.database.base import Base, BigIntPK, utcnow


class ModelVersion(Base):
    """An immutable TorchScript file (stored by sha256) with its classes and input spec."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"), UniqueConstraint("name", "sha256"))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(80))
    classes: Mapped[list[Any]]
    input_spec: Mapped[dict[str, Any]]
    has_embedding: Mapped[bool] = mapped_column(default=False)
    is_current: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Prediction(Base):
    """One image scored by one model version; never recomputed unless asked."""

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("model_version_id", "image_id"),
        Index("ix_predictions_model_version_id_margin", "model_version_id", "margin"),
        Index("ix_predictions_model_version_id_entropy", "model_version_id", "entropy"),
        Index(
            "ix_predictions_model_version_id_least_confidence",
            "model_version_id",
            "least_confidence",
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    probs: Mapped[list[Any]]
    predicted_class: Mapped[str] = mapped_column(String(128))
    predicted_score: Mapped[float]
    least_confidence: Mapped[float]
    margin: Mapped[float]
    entropy: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
