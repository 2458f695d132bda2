from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from dataops.database.base import Base, utcnow

# DupEdge.method values, and what DupGroup.methods lists.
PHASH, SEMANTIC = "phash", "semantic"


class DupGroup(Base):
    """Images that are the same picture; the unit of splitting and of selection."""

    __tablename__ = "dup_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    # No foreign key: images already reference their group, and a cycle would make the two
    # tables impossible to order. Group maintenance keeps this pointing at a member.
    representative_id: Mapped[int | None] = mapped_column(default=None)
    size: Mapped[int] = mapped_column(default=0)
    max_distance: Mapped[int] = mapped_column(default=0)
    methods: Mapped[str] = mapped_column(String(64), default="")
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("dup_groups.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


def _stage_of(context: Any) -> str:
    """Edges written without a stage: semantic ones say so, the rest are the hash stage's."""
    return SEMANTIC if context.get_current_parameters().get("method") == SEMANTIC else "hash"


class DupEdge(Base):
    """A confirmed near-duplicate pair; groups are derived from these and never shrink silently."""

    __tablename__ = "dup_edges"
    __table_args__ = (Index("ix_dup_edges_image_b_id", "image_b_id"),)

    image_a_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    image_b_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    method: Mapped[str] = mapped_column(String(16), primary_key=True)
    distance: Mapped[float] = mapped_column(default=0.0)
    # Which dedup stage matched the pair: hash, view, geometric or semantic.
    stage: Mapped[str] = mapped_column(String(16), default=_stage_of, server_default="hash")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IndexState(Base):
    """What the on-disk FAISS index holds, so a crash between file and DB is detected."""

    __tablename__ = "dedup_index_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(String(512))
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    checksum: Mapped[str] = mapped_column(String(64), default="")
    max_image_id: Mapped[int] = mapped_column(BigInteger, default=0)
    version: Mapped[int] = mapped_column(SmallInteger, default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DupViews(Base):
    """An image's view hashes (:mod:`dataops.dedup.views`), packed by
    :func:`dataops.dedup.viewstore.pack`; empty bytes when the image could not be read."""

    __tablename__ = "dup_views"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    codes: Mapped[bytes] = mapped_column(LargeBinary)
