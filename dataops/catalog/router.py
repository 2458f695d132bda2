"""The catalog over HTTP: browse images, thumbnails, ingest, and signed media for Label Studio."""

from __future__ import annotations

import re
import time
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.api import media, signing
from dataops.api.deps import (
    STAFF,
    SessionDep,
    actor,
    api_settings,
    require_roles,
)
from dataops.api.errors import error_json, error_responses
from dataops.auth.models import User
from dataops.catalog import roots, service
from dataops.catalog.errors import ImageChanged, ImageNotFound, InvalidFilter
from dataops.catalog.models import Image
from dataops.catalog.schemas import ImageDetail, ImageSummary, IngestBody
from dataops.config import get_settings
from dataops.jobs.router import accept_job
from dataops.jobs.schemas import JobAccepted
from dataops.selection.models import Batch, BatchItem

router = APIRouter(prefix="/v1", tags=["catalog"])
media_router = APIRouter(prefix="/v1", tags=["media"])

IMAGE_REF = r"^([0-9]{1,9}|[0-9a-fA-F]{8,64})$"
_ATTRIBUTE_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NO_NUL = r"^[^\x00]*$"
_MAX_ID = 2**31 - 1
_IMAGE_EXAMPLE = {
    "id": 42,
    "sha256": "9f2c6a1e0b7d4c3a8e5f1b2d6c9a0e3f7b4d1c8a5e2f9b6c3d0a7e4f1b8c5d2a",
    "uri": "/data/incoming/site-a/IMG_0042.jpg",
    "status": "ok",
    "quarantine_reason": None,
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_IMAGE_PNG_JPEG = {"image/jpeg": _BINARY, "image/png": _BINARY}

ImageRef = Annotated[
    str,
    Path(pattern=IMAGE_REF, description="Image id, sha256, or a unique sha256 prefix (8+ hex)."),
]


class ImageList(BaseModel):
    images: list[ImageSummary]
    limit: int
    offset: int


def _parse_attributes(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not _ATTRIBUTE_KEY.match(key) or "\x00" in value or len(value) > 256:
            raise InvalidFilter(
                "attribute filters are KEY=VALUE with a key of letters, digits and _ . - "
                "(up to 64) and a value of up to 256 characters"
            )
        out[key] = value
    return out


def _served(
    session: Session, image: Image, size: int | None, *, headers: dict[str, str]
) -> Response:
    """The rendered image from bytes that hash to its sha256, or a 409 ``image_changed``.

    The 409 is returned rather than raised so the request's transaction commits the stale
    location that the check recorded."""
    try:
        rendered = media.render(session, image, size, max_pixels=get_settings().ingest.max_pixels)
    except ImageChanged as exc:
        return error_json(exc.status_code, exc.code, str(exc))
    return Response(rendered.data, media_type=rendered.media_type, headers=headers)


@router.get(
    "/images",
    response_model=ImageList,
    summary="List images",
    description=(
        "Catalog images in id order, filtered by status, source and attributes "
        "(`attribute=device=phone`, repeatable; all must match)."
    ),
    responses={
        **error_responses(401, 403, 422),
        200: {
            "content": {
                "application/json": {
                    "example": {"images": [_IMAGE_EXAMPLE], "limit": 100, "offset": 0}
                }
            }
        },
    },
)
def list_images(
    session: SessionDep,
    _user: Annotated[User, Depends(require_roles(*STAFF))],
    status: Annotated[Literal["ok", "quarantined"] | None, Query()] = None,
    source: Annotated[
        str | None, Query(max_length=128, pattern=_NO_NUL, description="Source name.")
    ] = None,
    attribute: Annotated[
        list[str], Query(max_length=20, description="KEY=VALUE, repeatable.")
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=_MAX_ID)] = 0,
) -> ImageList:
    rows = service.list_images(
        session,
        status=status,
        source=source,
        attribute=_parse_attributes(attribute),
        limit=limit,
        offset=offset,
    )
    return ImageList(
        images=[ImageSummary.model_validate(r) for r in rows], limit=limit, offset=offset
    )


@router.get(
    "/images/{image_ref}",
    response_model=ImageDetail,
    summary="Get an image",
    description="Everything the catalog knows about one image: metadata, hashes, locations.",
    responses={
        **error_responses(401, 403, 404, 422),
        200: {
            "content": {
                "application/json": {
                    "example": {
                        **_IMAGE_EXAMPLE,
                        "blob_key": None,
                        "width": 4032,
                        "height": 3024,
                        "format": "JPEG",
                        "mode": "RGB",
                        "bytes": 2483211,
                        "captured_at": "2026-10-30T14:02:11Z",
                        "camera": "Apple iPhone 15",
                        "source": "site-a",
                        "attributes": {"device": "phone", "site": "berlin"},
                        "phash": "c3d1e0f8a4b29671",
                        "dhash": "0f1e3c7870e0c183",
                        "dup_group_id": None,
                        "locations": ["/data/incoming/site-a/IMG_0042.jpg"],
                        "ingested_at": "2026-11-02T09:30:05Z",
                    }
                }
            }
        },
    },
)
def get_image(
    session: SessionDep,
    _user: Annotated[User, Depends(require_roles(*STAFF))],
    image_ref: ImageRef,
) -> ImageDetail:
    return service.image_detail(session, service.get_image(session, image_ref))


@router.get(
    "/images/{image_ref}/thumbnail",
    response_class=Response,
    summary="Get a thumbnail",
    description=(
        "A small upright JPEG (PNG when the image has transparency) without any metadata. "
        "Staff only: vendors and annotators see images only through their tasks' signed, "
        "opaque media URLs, so no catalog id is ever something a vendor can use."
    ),
    responses={
        **error_responses(401, 403, 404, 409, 422),
        200: {"content": _IMAGE_PNG_JPEG, "description": "The thumbnail."},
    },
)
def get_thumbnail(
    session: SessionDep,
    _user: Annotated[User, Depends(require_roles(*STAFF))],
    image_ref: ImageRef,
    size: Annotated[int, Query(ge=16, le=1024, description="Longest edge in pixels.")] = 256,
) -> Response:
    image = service.get_image(session, image_ref)
    return _served(
        session,
        image,
        size,
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.post(
    "/ingest",
    status_code=202,
    response_model=JobAccepted,
    summary="Ingest images",
    description=(
        "Start an ingest job over server-side folders, files, globs or URLs inside the "
        "configured ingest roots. Answers at once with the job id; re-ingesting is a no-op."
    ),
    responses=error_responses(400, 401, 403, 413, 422, 503),
)
def ingest(
    session: SessionDep,
    body: IngestBody,
    background: BackgroundTasks,
    user: Annotated[User, Depends(require_roles("scientist"))],
) -> JobAccepted:
    request = roots.checked_request(body, api_settings().ingest_roots)
    return accept_job(session, background, "ingest", request.job_params(), actor=actor(user))


@media_router.get(
    "/media/{image_id}",
    response_class=Response,
    summary="Get an image through a signed URL",
    description=(
        "The full image, upright and stripped of EXIF and other metadata, for Label Studio. "
        "Needs no bearer token: the `sig` parameter (from `signed_image_url`) binds the image, "
        "the queue and the expiry. Expired, altered or reused signatures, and images that are "
        "not in one of the queue's batches, are refused with 403."
    ),
    responses={
        **error_responses(403, 404, 409, 422),
        200: {"content": _IMAGE_PNG_JPEG, "description": "The image."},
    },
)
def get_media(
    session: SessionDep,
    image_id: Annotated[int, Path(ge=1, le=_MAX_ID)],
    queue: Annotated[int | None, Query(ge=1, le=_MAX_ID, description="Queue id.")] = None,
    exp: Annotated[int | None, Query(ge=0, le=2**40, description="Expiry, Unix seconds.")] = None,
    sig: Annotated[str | None, Query(max_length=64, description="Signature.")] = None,
) -> Response:
    queue_id, expires = signing.verify(image_id, queue, exp, sig)
    in_queue = session.scalar(
        select(BatchItem.id)
        .join(Batch, Batch.id == BatchItem.batch_id)
        .where(BatchItem.image_id == image_id, Batch.queue_id == queue_id)
        .limit(1)
    )
    if in_queue is None:
        raise signing.InvalidSignature("this image is not in that queue")
    image = session.get(Image, image_id)
    if image is None:
        raise ImageNotFound(f"no image {image_id}")
    max_age = max(0, min(3600, expires - int(time.time())))
    return _served(
        session,
        image,
        None,
        headers={
            "Cache-Control": f"private, max-age={max_age}",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


@media_router.get(
    "/media/t/{task_key}",
    response_class=Response,
    summary="Get a task's image through a signed URL",
    description=(
        "The image of one pushed labeling task, upright and stripped of EXIF and other "
        "metadata, for Label Studio. The URL names only the task's opaque key (the same shape "
        "for gold and regular tasks) and needs no bearer token: `sig` binds the key and the "
        "expiry. Expired or altered signatures are refused with 403; a key that no longer "
        "exists is 404."
    ),
    responses={
        **error_responses(403, 404, 409, 422),
        200: {"content": _IMAGE_PNG_JPEG, "description": "The image."},
    },
)
def get_task_media(
    session: SessionDep,
    task_key: Annotated[str, Path(pattern=signing.TASK_KEY_PATTERN)],
    exp: Annotated[int | None, Query(ge=0, le=2**40, description="Expiry, Unix seconds.")] = None,
    sig: Annotated[str | None, Query(max_length=64, description="Signature.")] = None,
) -> Response:
    from dataops.labeling.tasks import media_target

    expires = signing.verify_task(task_key, exp, sig)
    target = media_target(session, task_key)
    image = session.get(Image, target[0]) if target is not None else None
    if image is None:
        raise ImageNotFound("no such task")
    max_age = max(0, min(3600, expires - int(time.time())))
    return _served(
        session,
        image,
        None,
        headers={
            "Cache-Control": f"private, max-age={max_age}",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
