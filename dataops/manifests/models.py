from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from dataops.database.base import Base, utcnow


class Manifest(Base):
    """A named, immutable manifest; two names for the same content share one content hash."""

    __tablename__ = "manifests"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    content_hash: Mapped[str] = mapped_column(String(71), index=True)
    seed: Mapped[int]
    splits: Mapped[dict[str, Any]]
    selection: Mapped[dict[str, Any]]
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("manifests.id"), default=None)
    row_count: Mapped[int]
    split_counts: Mapped[dict[str, Any]]
    body_key: Mapped[str] = mapped_column(String(256))
    parquet_key: Mapped[str] = mapped_column(String(256))
    datasheet_key: Mapped[str | None] = mapped_column(String(256), default=None)
    created_by: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ManifestRow(Base):
    """Rows are stored once per content hash and can never be changed or deleted."""

    __tablename__ = "manifest_rows"
    __table_args__ = (Index("ix_manifest_rows_image_id", "image_id"),)

    content_hash: Mapped[str] = mapped_column(String(71), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    split: Mapped[str] = mapped_column(String(32))
    label_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("label_versions.id"), default=None
    )
    label: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    dup_group_id: Mapped[int | None] = mapped_column(default=None)
