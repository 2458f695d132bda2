from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dataops.database.base import Base, utcnow

OK, QUARANTINED = "ok", "quarantined"


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Image(Base):
    """One image = one sha256 of bytes, wherever and however often it was found."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    uri: Mapped[str] = mapped_column(Text)
    blob_key: Mapped[str | None] = mapped_column(String(80), default=None)
    width: Mapped[int | None] = mapped_column(default=None)
    height: Mapped[int | None] = mapped_column(default=None)
    format: Mapped[str | None] = mapped_column(String(16), default=None)
    mode: Mapped[str | None] = mapped_column(String(16), default=None)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    captured_at: Mapped[datetime | None] = mapped_column(default=None)
    camera: Mapped[str | None] = mapped_column(String(128), default=None)
    source_id: Mapped[int | None] = mapped_column(
        ForeignKey("sources.id"), index=True, default=None
    )
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=OK, index=True)
    quarantine_reason: Mapped[str | None] = mapped_column(Text, default=None)
    phash: Mapped[int | None] = mapped_column(BigInteger, default=None)
    dhash: Mapped[int | None] = mapped_column(BigInteger, default=None)
    phash_flip: Mapped[int | None] = mapped_column(BigInteger, default=None)
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    dup_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("dup_groups.id", ondelete="SET NULL"), index=True, default=None
    )

    source: Mapped[Source | None] = relationship(lazy="raise")
    locations: Mapped[list[ImageLocation]] = relationship(
        back_populates="image", lazy="raise", order_by="ImageLocation.id"
    )


class ImageLocation(Base):
    """Every place the same bytes were found; re-ingest re-hashes a known location."""

    __tablename__ = "image_locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    uri: Mapped[str] = mapped_column(Text, unique=True)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id"), default=None)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)

    image: Mapped[Image] = relationship(back_populates="locations", lazy="raise")


class StaleLocation(Base):
    """A place an image's bytes were recorded at that now holds other bytes.

    Written when served bytes fail their sha256 check or a re-ingest finds other bytes there;
    removed when the image's own bytes are found there again.
    """

    __tablename__ = "stale_locations"
    __table_args__ = (UniqueConstraint("image_id", "uri"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    uri: Mapped[str] = mapped_column(Text)
    found_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)
