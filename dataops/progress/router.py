"""Queue progress, the batch list and a batch's items over HTTP (``dataops.labeling.progress``
and ``dataops.labeling.batch_items``).

Every role reads them; a vendor sees only its own queues and their sent batches, without
overlap or gold counts, and another vendor's queue or batch answers 404 like a missing one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from dataops.api.deps import SessionDep, VendorScopeDep
from dataops.api.errors import error_responses
from dataops.labeling import batch_items, progress
from dataops.labeling import examples_progress as examples
from dataops.labeling.progress_schemas import (
    BATCH_PAGE,
    DEFAULT_PERIOD_DAYS,
    ITEM_PAGE,
    MAX_PAGE,
    MAX_PERIOD_DAYS,
    BatchItems,
    BatchList,
    QueueProgress,
    QueueProgressList,
)
from dataops.labeling.router import BatchStatus, QueueRef

router = APIRouter(prefix="/v1")

_MAX_ID = 2**31 - 1
Days = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_PERIOD_DAYS,
        description="Days of throughput, today (UTC) included.",
    ),
]
Offset = Annotated[int, Query(ge=0, le=_MAX_ID, description="Skip this many.")]


def _example(value: object) -> dict[str, object]:
    return {"description": "Success.", "content": {"application/json": {"example": value}}}


@router.get(
    "/queue-progress",
    tags=["queues"],
    response_model=QueueProgressList,
    summary="Progress of every queue",
    description=(
        "Per queue, by name: vendor, pinned guideline version, turnaround, the earliest due "
        "date of its sent or in-progress batches and whether it has passed, items sent / "
        "answered / accepted / rejected, live answers, and new answers per UTC day over the "
        "last `days` days. Staff also get overlap and gold item counts; vendors get only "
        "their own queues, with those two counts null."
    ),
    responses={**error_responses(401, 403, 422), 200: _example({"queues": [examples.PROGRESS]})},
)
def list_queue_progress(
    session: SessionDep, scope: VendorScopeDep, days: Days = DEFAULT_PERIOD_DAYS
) -> QueueProgressList:
    queues = progress.visible_queue_rows(session, scope_vendor=scope.vendor_id)
    rows = progress.queue_progress(
        session, queues, vendor_view=scope.vendor_id is not None, days=days
    )
    return QueueProgressList(queues=rows)


@router.get(
    "/queues/{ref}/progress",
    tags=["queues"],
    response_model=QueueProgress,
    summary="A queue's progress",
    description=(
        "One queue's progress, as in `GET /v1/queue-progress`. For a vendor, another "
        "vendor's queue is 404, like one that does not exist."
    ),
    responses={**error_responses(401, 403, 404, 422), 200: _example(examples.PROGRESS)},
)
def get_queue_progress(
    session: SessionDep, scope: VendorScopeDep, ref: QueueRef, days: Days = DEFAULT_PERIOD_DAYS
) -> QueueProgress:
    return progress.progress_of_queue(session, ref, scope_vendor=scope.vendor_id, days=days)


@router.get(
    "/batches",
    tags=["batches"],
    response_model=BatchList,
    summary="List batches",
    description=(
        "Batches newest first, one page at a time (`total` counts every page), with their "
        "status, due date, overdue flag and items sent / answered / accepted / rejected. "
        "Staff see every batch with its strategy and overlap and gold counts; vendors see "
        "only their own queues' batches once sent, without those. A `queue` of another "
        "vendor is 404."
    ),
    responses={**error_responses(401, 403, 404, 422), 200: _example(examples.BATCH_LIST)},
)
def list_batches(
    session: SessionDep,
    scope: VendorScopeDep,
    queue: Annotated[
        str | None,
        Query(pattern=r"^[^\x00-\x1f/]{1,128}$", description="Only this queue's (id or name)."),
    ] = None,
    status: Annotated[BatchStatus | None, Query(description="Only batches in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="At most this many.")] = BATCH_PAGE,
    offset: Offset = 0,
) -> BatchList:
    return progress.list_batches(
        session,
        scope_vendor=scope.vendor_id,
        queue=queue,
        status=status,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/batches/{batch_id}/items",
    tags=["batches"],
    response_model=BatchItems,
    summary="A batch's items, one page",
    description=(
        "The batch with its counts and one page of its items. Staff: in pick order, each "
        "with a signed, expiring image URL (no token needed), file name, selection score, "
        "the batch model's predicted class and score, its live answers (annotator, value, "
        "audit status) and gold and overlap flags. Vendors: only their own sent batches' "
        "tasks, in push order, as task key, Label Studio task and media URL; anything else "
        "is 404."
    ),
    responses={**error_responses(401, 403, 404, 422), 200: _example(examples.BATCH_ITEMS)},
)
def list_batch_items(
    session: SessionDep,
    scope: VendorScopeDep,
    batch_id: Annotated[int, Path(ge=1, le=_MAX_ID, description="The batch id.")],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="At most this many.")] = ITEM_PAGE,
    offset: Offset = 0,
) -> BatchItems:
    return batch_items.batch_items(
        session, batch_id, scope_vendor=scope.vendor_id, limit=limit, offset=offset
    )
