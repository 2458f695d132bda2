from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, validates

from dataops.database.base import Base, utcnow

SUBMITTED, ACCEPTED, REJECTED, ADJUDICATED, DELETED = (
    "submitted",
    "accepted",
    "rejected",
    "adjudicated",
    "deleted",
)
# Kept as given but neither accepted nor rejected: no ground truth, and it does not hold its
# image (see dataops.audits.policy).
RELEASED = "released"


class Vendor(Base):
    __tablename__ = "vendors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Guideline(Base):
    """A published guideline version: Markdown + class list, identified by its content hash."""

    __tablename__ = "guidelines"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    classes: Mapped[list[Any]]
    body: Mapped[str] = mapped_column(Text)
    label_config: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Queue(Base):
    """A vendor's labeling queue, pinned to one guideline version and one Label Studio connection."""

    __tablename__ = "queues"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("vendors.id"), index=True)
    guideline_id: Mapped[int] = mapped_column(ForeignKey("guidelines.id"))
    connection: Mapped[str] = mapped_column(String(64), default="default")
    overlap: Mapped[float] = mapped_column(default=0.0)
    gold: Mapped[float] = mapped_column(default=0.0)
    due_days: Mapped[float | None] = mapped_column(default=None)
    # What an audit does with the queue's batches (see dataops.audits.policy).
    on_reject: Mapped[str] = mapped_column(String(16), default="relabel_failed")
    relabel_answers: Mapped[int] = mapped_column(default=3)
    relabel_agree: Mapped[int] = mapped_column(default=2)
    relabel_rounds: Mapped[int] = mapped_column(default=2)
    accept_rule: Mapped[str] = mapped_column(String(16), default="majority")
    ls_project_id: Mapped[int | None] = mapped_column(default=None)
    pull_cursor: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @validates("guideline_id")
    def _keep_guideline(self, _key: str, value: int) -> int:
        # Labels made under one guideline version are only comparable with each other: a new
        # version gets a new queue (and a new Label Studio project), never this one.
        if self.guideline_id is not None and value != self.guideline_id:
            from dataops.labeling.errors import QueuePinned

            raise QueuePinned(
                f"queue {self.name!r} is pinned to guideline id {self.guideline_id}; "
                "create a new queue for the new guideline version"
            )
        return value


class Annotator(Base):
    """A Label Studio user on one connection, mapped to a vendor; `mapped_by` records how."""

    __tablename__ = "annotators"
    __table_args__ = (UniqueConstraint("connection", "ls_user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    vendor_id: Mapped[int | None] = mapped_column(
        ForeignKey("vendors.id"), index=True, default=None
    )
    connection: Mapped[str | None] = mapped_column(String(64), default=None)
    ls_user_id: Mapped[int | None] = mapped_column(default=None)
    email: Mapped[str | None] = mapped_column(String(256), default=None)
    mapped_by: Mapped[str] = mapped_column(String(32), default="import")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LabelVersion(Base):
    """Append-only: an edit is a new row that supersedes the annotator's previous one."""

    __tablename__ = "label_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    annotator_id: Mapped[int | None] = mapped_column(
        ForeignKey("annotators.id"), index=True, default=None
    )
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), index=True, default=None)
    guideline_id: Mapped[int | None] = mapped_column(ForeignKey("guidelines.id"), default=None)
    task: Mapped[str] = mapped_column(String(128), default="default", index=True)
    payload: Mapped[dict[str, Any]]
    source: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(128))
    source_updated_at: Mapped[datetime | None] = mapped_column(default=None)
    source_key: Mapped[str] = mapped_column(String(256), unique=True)
    supersedes_id: Mapped[int | None] = mapped_column(
        ForeignKey("label_versions.id"), index=True, default=None
    )
    status: Mapped[str] = mapped_column(String(16), default=SUBMITTED, index=True)
    # Seconds the annotator spent on this answer, as Label Studio reports it (``lead_time``).
    lead_time: Mapped[float | None] = mapped_column(default=None)
    created_by: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaskKey(Base):
    """The only name a vendor ever sees for an item: a random token, the same shape for gold
    and regular work, mapped back to the batch item, image, gold flag and queue here."""

    __tablename__ = "task_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    batch_item_id: Mapped[int] = mapped_column(
        ForeignKey("batch_items.id", ondelete="CASCADE"), unique=True
    )
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("queues.id"), index=True)
    is_gold: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
