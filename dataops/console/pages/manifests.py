"""Manifests in the console: the list, one manifest's datasheet, its verification, and the
diff between two versions (the same services as ``/v1/manifests``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse

from dataops.api.deps import SessionDep
from dataops.auth.models import User
from dataops.console.deps import STAFF, console_roles
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


@router.get("/manifests")
def manifest_list(request: Request, session: SessionDep, user: Staff) -> HTMLResponse:
    manifests = [service.manifest_out(session, m) for m in service.list_manifests(session)]
    return render(request, "manifests/index.html", {"manifests": manifests[::-1]}, user=user)


@router.get("/manifests/diff")
def manifest_diff(
    request: Request, session: SessionDep, user: Staff, a: OptionalRef = None, b: OptionalRef = None
) -> HTMLResponse:
    names = [m.name for m in service.list_manifests(session)]
    report = diff_manifests(session, a, b, limit=DIFF_LIMIT) if a and b else None
    return render(
        request,
        "manifests/diff.html",
        {"names": names, "a": a or "", "b": b or "", "report": report, "limit": DIFF_LIMIT},
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
def manifest_verify(
    request: Request,
    session: SessionDep,
    user: Staff,
    ref: Ref,
    body_only: Annotated[bool, Query()] = False,
) -> HTMLResponse:
    manifest = service.get_manifest(session, ref)
    report = verify_manifest(session, manifest.name, body_only=body_only)
    return render(
        request,
        "manifests/verify.html",
        {"manifest": service.manifest_out(session, manifest), "report": report},
        user=user,
    )
