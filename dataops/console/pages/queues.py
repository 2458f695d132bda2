"""Queues and batches in the console: every queue's progress, one queue's throughput and
batches, one batch's items.

The numbers are ``dataops.labeling.progress`` (``GET /v1/queue-progress``,
``/v1/queues/{ref}/progress``, ``/v1/batches``) and ``dataops.labeling.batch_items``
(``GET /v1/batches/{id}/items``). A vendor sees only its own queues and their sent batches,
without overlap or gold counts and with its tasks only as keys and images; another vendor's
queue or batch is the same 404 page as one that does not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from dataops.api.deps import SessionDep
from dataops.console.deps import ConsoleUser, ConsoleVendorScope
from dataops.console.render import render
from dataops.labeling import batch_items, progress
from dataops.labeling.progress_schemas import BATCH_PAGE, ITEM_PAGE, MAX_PERIOD_DAYS

router = APIRouter()

QueueRef = Annotated[str, Path(pattern=r"^[^\x00-\x1f/]{1,128}$")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
Days = Annotated[int, Query(ge=1, le=MAX_PERIOD_DAYS)]
QUEUE_DAYS = 14


def _pages(base: str, offset: int, limit: int, total: int) -> tuple[str | None, str | None]:
    """Links to the previous and next page of a listing (None where there is none)."""
    joiner = "&" if "?" in base else "?"
    prev = f"{base}{joiner}offset={max(offset - limit, 0)}" if offset > 0 else None
    nxt = f"{base}{joiner}offset={offset + limit}" if offset + limit < total else None
    return prev, nxt


@router.get("/queues")
def queue_list(
    request: Request, session: SessionDep, user: ConsoleUser, scope: ConsoleVendorScope
) -> HTMLResponse:
    queues = progress.visible_queue_rows(session, scope_vendor=scope.vendor_id)
    rows = progress.queue_progress(session, queues, vendor_view=scope.vendor_id is not None)
    return render(
        request,
        "queues/index.html",
        {"queues": rows, "staff": scope.vendor_id is None},
        user=user,
    )


@router.get("/queues/{ref}")
def queue_page(
    request: Request,
    session: SessionDep,
    user: ConsoleUser,
    scope: ConsoleVendorScope,
    ref: QueueRef,
    days: Days = QUEUE_DAYS,
    offset: Offset = 0,
) -> HTMLResponse:
    queue = progress.progress_of_queue(session, ref, scope_vendor=scope.vendor_id, days=days)
    batches = progress.list_batches(
        session, scope_vendor=scope.vendor_id, queue=queue.queue_id, offset=offset
    )
    base = f"/console/queues/{queue.queue_id}?days={days}"
    prev_url, next_url = _pages(base, offset, BATCH_PAGE, batches.total)
    return render(
        request,
        "queues/show.html",
        {
            "queue": queue,
            "batches": batches,
            "staff": scope.vendor_id is None,
            "peak": max([day.answers for day in queue.throughput] + [1]),
            "prev_url": prev_url,
            "next_url": next_url,
        },
        user=user,
    )


@router.get("/batches/{batch_id}")
def batch_page(
    request: Request,
    session: SessionDep,
    user: ConsoleUser,
    scope: ConsoleVendorScope,
    batch_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    offset: Offset = 0,
) -> HTMLResponse:
    page = batch_items.batch_items(session, batch_id, scope_vendor=scope.vendor_id, offset=offset)
    prev_url, next_url = _pages(f"/console/batches/{batch_id}", offset, ITEM_PAGE, page.total)
    return render(
        request,
        "queues/batch.html",
        {
            "page": page,
            "batch": page.batch,
            "staff": scope.vendor_id is None,
            "prev_url": prev_url,
            "next_url": next_url,
        },
        user=user,
    )
