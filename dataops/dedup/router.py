"""Duplicate groups over HTTP: run dedup (202), list, inspect, and look at a contact sheet.

Groups span the whole catalog, so vendors (who see only their own queues) are refused.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Path, Query, Response

from dataops.api.deps import STAFF, SessionDep, actor, require_roles
from dataops.api.errors import error_responses
from dataops.auth.models import User
from dataops.dedup import service
from dataops.dedup.schemas import DedupRunRequest, GroupDetail, GroupPage
from dataops.dedup.semantic import embedding_source
from dataops.jobs.router import accept_job
from dataops.jobs.schemas import JobAccepted

router = APIRouter(prefix="/v1", tags=["dedup"])

_MAX_ID = 2**31 - 1
_MEMBER = {
    "image_id": 42,
    "uri": "/data/incoming/site-a/IMG_0042.jpg",
    "sha256": "9f2c6a1e0b7d4c3a8e5f1b2d6c9a0e3f7b4d1c8a5e2f9b6c3d0a7e4f1b8c5d2a",
}

GroupId = Annotated[int, Path(ge=1, le=_MAX_ID, description="Duplicate group id.")]
Staff = Annotated[User, Depends(require_roles(*STAFF))]


@router.post(
    "/dedup/run",
    status_code=202,
    response_model=JobAccepted,
    summary="Find duplicates",
    description=(
        "Starts a `dedup` job, as `dataops dedup run` does: images added since the last run are "
        "matched against the index (pHash confirmed by dHash, mirrored images too unless "
        "DATAOPS_DEDUP__FLIP is false; with `semantic` also model embeddings) and the groups "
        "updated; `full` recomputes every pair. The job's result is the run summary. "
        "`semantic` is checked now: it needs a current model version whose embeddings were "
        "computed."
    ),
    responses=error_responses(400, 401, 403, 413, 422, 503),
)
def run_dedup(
    session: SessionDep,
    background: BackgroundTasks,
    user: Annotated[User, Depends(require_roles("scientist"))],
    request: Annotated[DedupRunRequest | None, Body()] = None,
) -> JobAccepted:
    body = request or DedupRunRequest()
    if body.semantic:
        embedding_source(session)
    return accept_job(session, background, "dedup", body.model_dump(), actor=actor(user))


@router.get(
    "/dedup/groups",
    response_model=GroupPage,
    summary="List duplicate groups",
    description="Live duplicate groups in id order, each with its members, representative first.",
    responses={
        **error_responses(401, 403, 422),
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "groups": [
                            {"id": 7, "representative": 42, "size": 1, "members": [_MEMBER]}
                        ],
                        "limit": 100,
                        "offset": 0,
                    }
                }
            }
        },
    },
)
def list_groups(
    session: SessionDep,
    _user: Staff,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=_MAX_ID)] = 0,
    members: Annotated[
        int | None,
        Query(ge=1, le=1000, description="At most this many members per group (default all)."),
    ] = None,
) -> GroupPage:
    groups = service.list_groups(session, limit=limit, offset=offset, members_per_group=members)
    return GroupPage(groups=groups, limit=limit, offset=offset)


@router.get(
    "/dedup/groups/{group_id}",
    response_model=GroupDetail,
    summary="Get a duplicate group",
    description=(
        "A group's members with their size and pHash distance to the representative, the "
        "methods that matched them, and `merged_into` when a later image bridged it into "
        "another group."
    ),
    responses={
        **error_responses(401, 403, 404, 422),
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "id": 7,
                        "representative": 42,
                        "size": 2,
                        "max_distance": 3,
                        "methods": ["phash"],
                        "merged_into": None,
                        "created_at": "2026-11-02T09:31:00Z",
                        "updated_at": "2026-11-02T09:31:00Z",
                        "members": [
                            {**_MEMBER, "width": 4032, "height": 3024, "distance": 0},
                            {
                                "image_id": 57,
                                "uri": "/data/incoming/site-b/copy.jpg",
                                "sha256": "0c1d2e3f" * 8,
                                "width": 1008,
                                "height": 756,
                                "distance": 3,
                            },
                        ],
                    }
                }
            }
        },
    },
)
def get_group(session: SessionDep, _user: Staff, group_id: GroupId) -> GroupDetail:
    return service.group_detail(session, group_id)


@router.get(
    "/dedup/groups/{group_id}/contact-sheet",
    response_class=Response,
    summary="Get a group's contact sheet",
    description=(
        "A PNG with every member's thumbnail, representative first, captioned with the image "
        "id and its pHash distance to the representative."
    ),
    responses={
        **error_responses(401, 403, 404, 422),
        200: {
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The contact sheet.",
        },
    },
)
def get_contact_sheet(session: SessionDep, _user: Staff, group_id: GroupId) -> Response:
    return Response(
        service.contact_sheet(session, group_id),
        media_type="image/png",
        headers={"Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff"},
    )
