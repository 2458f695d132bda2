"""Scientist batch requests: ask for a batch, watch the select job, look at the chosen images,
then push them to the vendor queue or cancel them.

The same operations as the API, in the same order: ``SelectRequest`` → ``plan.pin`` → a
``select`` job (its batch is a draft) → ``labelstudio`` push job, or ``cancel.cancel_batch``.
Scientists request and cancel drafts; pushing, and cancelling a batch a vendor already has,
is labeling ops' (as over HTTP).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dataops.api.deps import SessionDep, actor
from dataops.auth.models import User
from dataops.console.deps import CsrfForm, console_roles
from dataops.console.render import render
from dataops.errors import DataopsError
from dataops.jobs import service as jobs
from dataops.jobs.router import accept_job
from dataops.jobs.schemas import JobOut
from dataops.labeling.queues import list_queues
from dataops.labelstudio.push import check_pushable
from dataops.labelstudio.schemas import PushRequest, sync_request
from dataops.selection import cancel, registry, requests
from dataops.selection.plan import pin
from dataops.selection.schemas import SelectRequest, select_request

router = APIRouter()

Requester = Annotated[User, Depends(console_roles("scientist", "labeling_ops"))]
Pusher = Annotated[User, Depends(console_roles("labeling_ops"))]
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
# Form fields that go into the SelectRequest as typed; empty ones are left out.
_FIELDS = ("strategy", "size", "class", "mode", "queue", "model", "seed")
_PUSHERS = frozenset({"admin", "labeling_ops"})


def _form_page(
    request: Request,
    session: SessionDep,
    user: User,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "requests/index.html",
        {
            "strategies": [registry.REGISTRY[name] for name in registry.names()],
            "queues": [q.name for q in list_queues(session)],
            "values": values or {"size": "50", "seed": "0"},
            "error": error,
            "requests": requests.recent_requests(session),
        },
        user=user,
        status_code=status_code,
    )


@router.get("/requests")
def request_form(request: Request, session: SessionDep, user: Requester) -> HTMLResponse:
    return _form_page(request, session, user)


@router.post("/requests")
def request_batch(
    request: Request,
    session: SessionDep,
    background: BackgroundTasks,
    user: Requester,
    form: CsrfForm,
) -> Response:
    values = {k: str(form.get(k) or "").strip() for k in _FIELDS}
    given: dict[str, object] = {k: v for k, v in values.items() if v}
    given["allow_partial"] = form.get("allow_partial") == "on"
    try:
        selection: SelectRequest = pin(session, select_request(given))
    except DataopsError as exc:
        return _form_page(
            request, session, user, values=values, error=str(exc), status_code=exc.status_code
        )
    params = selection.model_dump(exclude_defaults=True)
    accepted = accept_job(session, background, "select", params, actor=actor(user))
    return RedirectResponse(f"/console/requests/{accepted.job_id}", status_code=303)


@router.get("/requests/{job_id}")
def request_page(
    request: Request,
    session: SessionDep,
    user: Requester,
    job_id: JobId,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    push_job: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
) -> HTMLResponse:
    row = requests.get_request(session, job_id)
    preview = (
        requests.preview(session, row.batch_id, offset=offset) if row.batch_id is not None else None
    )
    pushing = JobOut.model_validate(jobs.get_job(session, push_job)) if push_job else None
    return render(
        request,
        "requests/show.html",
        {
            "row": row,
            "preview": preview,
            "pushing": pushing,
            "may_push": user.role in _PUSHERS,
            "may_cancel_sent": user.role in requests.SENT_CANCELLERS,
        },
        user=user,
    )


@router.get("/requests/{job_id}/status.json")
def request_status(session: SessionDep, _user: Requester, job_id: JobId) -> dict[str, list[JobOut]]:
    """What console.js polls while the select job (or the push job) runs."""
    return {"jobs": [JobOut.model_validate(jobs.get_job(session, job_id))]}


def _batch_of(session: SessionDep, job_id: str) -> int:
    row = requests.get_request(session, job_id)
    if row.batch_id is None:
        raise DataopsError("this request has no batch yet: its select job has not finished")
    return row.batch_id


@router.post("/requests/{job_id}/push")
def push(
    session: SessionDep,
    background: BackgroundTasks,
    user: Pusher,
    job_id: JobId,
    _form: CsrfForm,
) -> RedirectResponse:
    batch_id = _batch_of(session, job_id)
    check_pushable(session, batch_id)
    params = PushRequest(batch_id=batch_id).model_dump()
    accepted = accept_job(session, background, "sync", params, actor=actor(user))
    return RedirectResponse(
        f"/console/requests/{job_id}?push_job={accepted.job_id}", status_code=303
    )


@router.post("/requests/{job_id}/cancel")
def cancel_request(
    session: SessionDep,
    background: BackgroundTasks,
    user: Requester,
    job_id: JobId,
    form: CsrfForm,
) -> RedirectResponse:
    batch_id = _batch_of(session, job_id)
    batch = requests.check_may_cancel(session, batch_id, user.role)
    reason = str(form.get("reason") or "").strip()[:500] or "cancelled in the console"
    change = cancel.cancel_batch(
        batch_id, transaction=lambda: nullcontext(session), actor=actor(user), reason=reason
    )
    if change.kept_tasks and batch.queue_id is not None:
        pull = sync_request({"action": "pull", "queue_id": batch.queue_id})
        accept_job(
            session, background, "sync", pull.model_dump(exclude_none=True), actor=actor(user)
        )
    return RedirectResponse(f"/console/requests/{job_id}", status_code=303)
