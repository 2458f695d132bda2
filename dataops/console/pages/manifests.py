"""Manifests in the console: the list, one manifest's datasheet, its verification, and the
diff between two versions (the same services as ``/v1/manifests``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse

from dataops.api.deps import SessionDep
from dataops.auth.models import User
from dataops.console.deps import STAFF, CsrfForm, console_roles
from dataops.console.render import render
from dataops.errors import NotFound
from dataops.manifests import service
from dataops.manifests.diff import diff_manifests
from dataops.manifests.schemas import REF_PATTERN
from dataops.manifests.verify import verify_manifest

router = APIRouter()

Staff = Annotated[User, Depends(console_roles(*STAFF))]
Ref = Annotated[str, Path(min_length=1, max_length=200, pattern=REF_PATTERN)]
OptionalRef = Annotated[str | None, Query(max_length=200, pattern=r"^$|" + REF_PATTERN)]
DIFF_LIMIT = 200
# Manifests per page of the list, and names the compare form suggests.
PAGE = 50
SUGGESTED = 50


@router.get("/manifests")
def manifest_list(
    request: Request,
    session: SessionDep,
    user: Staff,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    page = service.manifest_page(session, limit=PAGE, offset=offset)
    return render(
        request,
        "manifests/index.html",
        {
            "page": page,
            "prev_url": f"/console/manifests?offset={max(0, offset - PAGE)}" if offset else None,
            "next_url": f"/console/manifests?offset={offset + PAGE}" if page.more else None,
        },
        user=user,
    )


@router.get("/manifests/diff")
def manifest_diff(
    request: Request, session: SessionDep, user: Staff, a: OptionalRef = None, b: OptionalRef = None
) -> HTMLResponse:
    """Two manifests by name or id, typed in (a list of every manifest would grow without
    end); the newest few are offered as suggestions."""
    recent = [m.name for m in service.manifest_page(session, limit=SUGGESTED).manifests]
    report = diff_manifests(session, a, b, limit=DIFF_LIMIT) if a and b else None
    return render(
        request,
        "manifests/diff.html",
        {"names": recent, "a": a or "", "b": b or "", "report": report, "limit": DIFF_LIMIT},
        user=user,
    )


@router.get("/manifests/{ref}")
def manifest_page(request: Request, session: SessionDep, user: Staff, ref: Ref) -> HTMLResponse:
    manifest = service.get_manifest(session, ref)
    try:
        datasheet, _markdown = service.read_datasheet(manifest)
    except NotFound:
        datasheet = None
    return render(
        request,
        "manifests/show.html",
        {"manifest": service.manifest_out(session, manifest), "datasheet": datasheet},
        user=user,
    )


@router.get("/manifests/{ref}/verify")
def manifest_verify_form(
    request: Request, session: SessionDep, user: Staff, ref: Ref
) -> HTMLResponse:
    """What verifying does, and the buttons that start it: re-hashing every file is too much
    work for a link (prefetchers and crawlers follow links)."""
    manifest = service.get_manifest(session, ref)
    return render(
        request,
        "manifests/verify.html",
        {"manifest": service.manifest_out(session, manifest), "report": None},
        user=user,
    )


@router.post("/manifests/{ref}/verify")
def manifest_verify(
    request: Request, session: SessionDep, user: Staff, ref: Ref, form: CsrfForm
) -> HTMLResponse:
    manifest = service.get_manifest(session, ref)
    body_only = form.get("body_only") == "true"
    report = verify_manifest(session, manifest.name, body_only=body_only)
    return render(
        request,
        "manifests/verify.html",
        {"manifest": service.manifest_out(session, manifest), "report": report},
        user=user,
    )
