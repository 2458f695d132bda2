"""Shapes of queue progress, the batch list and a batch's items (``dataops.labeling.progress``).

Fields a vendor must not read (overlap and gold counts, flags, model scores, audit verdicts
per item) are optional: vendor answers carry them as null, so one shape serves both readers.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field

from dataops.labeling.schemas import UtcDatetime

MAX_PERIOD_DAYS = 92
DEFAULT_PERIOD_DAYS = 7
BATCH_PAGE = 50
ITEM_PAGE = 60
MAX_PAGE = 500


class Counts(BaseModel):
    """Items of a queue's (or a batch's) batches and where they stand."""

    items: int = Field(description="Items in the batches, drafts included.")
    sent: int = Field(description="Items pushed to Label Studio as tasks.")
    answered: int = Field(description="Items with at least one live answer.")
    accepted: int = Field(description="Items with a live answer an audit accepted or adjudicated.")
    rejected: int = Field(description="Items whose live answers an audit rejected, none accepted.")
    answers: int = Field(description="Live answers (each annotator's newest, deletions left out).")
    overlap_items: int | None = Field(
        default=None, description="Sent items asked of several annotators (null for vendors)."
    )
    gold_items: int | None = Field(
        default=None, description="Sent items with a known answer (null for vendors)."
    )


class DayCount(BaseModel):
    day: date
    answers: int


class BatchRow(Counts):
    id: int
    queue_id: int | None
    queue: str | None
    status: str
    purpose: str
    strategy: str | None = Field(description="Selection strategy (null for vendors).")
    created_at: UtcDatetime
    sent_at: UtcDatetime | None
    due_at: UtcDatetime | None
    overdue: bool = Field(description="Due date passed while the batch is sent or in progress.")


class BatchList(BaseModel):
    batches: list[BatchRow]
    total: int = Field(description="Batches matching the filters, over every page.")
    limit: int
    offset: int


class QueueProgress(Counts):
    queue_id: int
    queue: str
    vendor: str
    vendor_id: int
    guideline: str = Field(description="The pinned guideline version, NAME:VERSION.")
    due_days: float | None = Field(description="Turnaround the queue gives each batch.")
    next_due_at: UtcDatetime | None = Field(
        description="The earliest due date among its sent or in-progress batches."
    )
    overdue: bool = Field(description="One of its sent or in-progress batches is past due.")
    batches: int
    open_batches: int = Field(description="Batches drafted, sent, in progress or delivered.")
    period_days: int = Field(description="Days the throughput covers, today (UTC) included.")
    throughput: list[DayCount] = Field(description="New answers per UTC day, oldest first.")
    period_answers: int = Field(description="New answers over the whole period.")


class QueueProgressList(BaseModel):
    queues: list[QueueProgress]


class LiveLabel(BaseModel):
    annotator: str | None
    value: str = Field(description="The class, or the boxes' classes and count.")
    status: str = Field(description="submitted, accepted, rejected, adjudicated or released.")


class BatchItemRow(BaseModel):
    """One item of a batch page. For vendors only `key`, `ls_task_id` and `media_url` are
    set: a score, flag or answer count per item would help spot gold and overlap items."""

    key: str | None = Field(description="The task key, once pushed.")
    ls_task_id: int | None
    media_url: str | None = Field(
        description="Signed, expiring media path on this server; needs no token (null for "
        "a batch without a queue)."
    )
    position: int | None = None
    image_id: int | None = None
    file_name: str | None = None
    score: float | None = Field(default=None, description="The selection strategy's score.")
    predicted_class: str | None = Field(
        default=None, description="The batch model's top class for the image."
    )
    predicted_score: float | None = None
    is_gold: bool | None = None
    is_overlap: bool | None = None
    labels: list[LiveLabel] | None = None


class BatchItems(BaseModel):
    batch: BatchRow
    items: list[BatchItemRow]
    total: int
    limit: int
    offset: int


Reader = Literal["staff", "vendor"]


def describe_payload(payload: dict[str, Any]) -> str:
    """A label in a few words: ``helmet``, or ``2 boxes: helmet, person``."""
    if "class" in payload:
        return str(payload["class"])
    boxes = payload.get("boxes") or []
    classes = sorted({str(box.get("class")) for box in boxes if isinstance(box, dict)})
    if not boxes:
        return "no boxes"
    noun = "box" if len(boxes) == 1 else "boxes"
    return f"{len(boxes)} {noun}: {', '.join(classes)}"
