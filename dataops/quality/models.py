from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dataops.database.base import Base, BigIntPK, utcnow

KFOLD = "kfold"
IMPORTED = "imported"
SOURCES = (KFOLD, IMPORTED)


class LabelQualityRun(Base):
    """One pass of confident learning over a task's live labels; immutable once written.

    ``source`` says where the out-of-sample probabilities came from: ``kfold`` (a head
    dataops trained on the model's embeddings, k folds) or ``imported`` (declared
    out-of-sample by the caller). ``per_class`` holds the estimated label-error rate per class.
    """

    __tablename__ = "label_quality_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    task: Mapped[str] = mapped_column(String(128), index=True)
    source: Mapped[str] = mapped_column(String(16))
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id"), default=None
    )
    params: Mapped[dict[str, Any]]
    classes: Mapped[list[Any]]
    labels: Mapped[int]
    issues: Mapped[int]
    per_class: Mapped[dict[str, Any]]
    job_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    created_by: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LabelQuality(Base):
    """The score of one label version in one run: low quality means probably mislabeled."""

    __tablename__ = "label_quality"
    __table_args__ = (
        UniqueConstraint("run_id", "label_version_id"),
        Index("ix_label_quality_run_id_quality", "run_id", "quality"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("label_quality_runs.id", ondelete="CASCADE"))
    label_version_id: Mapped[int] = mapped_column(ForeignKey("label_versions.id"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    given_class: Mapped[str] = mapped_column(String(128))
    suggested_class: Mapped[str] = mapped_column(String(128))
    quality: Mapped[float]
    is_issue: Mapped[bool] = mapped_column(default=False)
