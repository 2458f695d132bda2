"""Image thumbnails for staff pages, authorised by the console session (same origin, so the
CSP's ``img-src 'self'`` holds).

Signed media URLs need a queue the image was sent to; duplicate groups and manifest leaks
show images that may never have been in one. Vendors are refused, as on
``GET /v1/images/{ref}/thumbnail``: they see images only through their tasks' signed URLs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from dataops.api import media
from dataops.api.deps import SessionDep
from dataops.auth.models import User
from dataops.catalog import service
from dataops.config import get_settings
from dataops.console.deps import STAFF, console_roles

router = APIRouter()

Staff = Annotated[User, Depends(console_roles(*STAFF))]


def thumbnail_url(image_id: int, size: int = 160) -> str:
    return f"/console/images/{image_id}/thumbnail?size={size}"


@router.get("/images/{image_id}/thumbnail")
def image_thumbnail(
    session: SessionDep,
    _user: Staff,
    image_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    size: Annotated[int, Query(ge=16, le=512)] = 160,
) -> Response:
    image = service.get_image(session, str(image_id))
    rendered = media.render(session, image, size, max_pixels=get_settings().ingest.max_pixels)
    return Response(
        rendered.data,
        media_type=rendered.media_type,
        headers={"Cache-Control": "private, max-age=3600"},
    )
