"""Duplicate groups in the console (staff only): groups as image grids a page at a time, one
group with every member and its distance to the representative, and the leak report of a
manifest (groups its splits cut through). The same services as ``/v1/dedup/groups`` and
``/v1/manifests/{ref}/leaks``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse

from dataops.api.deps import SessionDep
from dataops.audits.disputed import file_name
from dataops.auth.models import User
from dataops.console.deps import STAFF, console_roles
from dataops.console.pages.images import thumbnail_url
from dataops.console.render import render
from dataops.dedup import service
from dataops.manifests.leaks import manifest_leaks
from dataops.manifests.schemas import REF_PATTERN

router = APIRouter()

Staff = Annotated[User, Depends(console_roles(*STAFF))]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
Ref = Annotated[str, Path(min_length=1, max_length=200, pattern=REF_PATTERN)]
GROUPS_PAGE = 24
MEMBERS_SHOWN = 6
LEAKS_PAGE = 20


def _pager(base: str, offset: int, page: int, more: bool) -> dict[str, str | None]:
    join = "&" if "?" in base else "?"
    return {
        "prev_url": f"{base}{join}offset={max(0, offset - page)}" if offset > 0 else None,
        "next_url": f"{base}{join}offset={offset + page}" if more else None,
    }


@router.get("/duplicates")
def group_list(
    request: Request, session: SessionDep, user: Staff, offset: Offset = 0
) -> HTMLResponse:
    groups = service.list_groups(
        session, limit=GROUPS_PAGE + 1, offset=offset, members_per_group=MEMBERS_SHOWN
    )
    return render(
        request,
        "duplicates/index.html",
        {
            "groups": groups[:GROUPS_PAGE],
            "thumb": thumbnail_url,
            "name": file_name,
            "offset": offset,
            **_pager("/console/duplicates", offset, GROUPS_PAGE, len(groups) > GROUPS_PAGE),
        },
        user=user,
    )


@router.get("/duplicates/{group_id}")
def group_page(
    request: Request,
    session: SessionDep,
    user: Staff,
    group_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
) -> HTMLResponse:
    detail = service.group_detail(session, group_id)
    return render(
        request,
        "duplicates/show.html",
        {"group": detail, "thumb": thumbnail_url, "name": file_name},
        user=user,
    )


@router.get("/manifests/{ref}/leaks")
def manifest_leak_page(
    request: Request, session: SessionDep, user: Staff, ref: Ref, offset: Offset = 0
) -> HTMLResponse:
    report = manifest_leaks(session, ref, limit=LEAKS_PAGE, offset=offset)
    more = offset + LEAKS_PAGE < report.total_leaks
    return render(
        request,
        "duplicates/leaks.html",
        {
            "ref": ref,
            "report": report,
            "thumb": thumbnail_url,
            **_pager(f"/console/manifests/{ref}/leaks", offset, LEAKS_PAGE, more),
        },
        user=user,
    )
