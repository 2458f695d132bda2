"""Labels over HTTP: every label version, filtered by image, batch, status or task.

Labels span every vendor's queues, so vendors are refused; staff who read labels may list them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from dataops.api.deps import SessionDep, require_roles
from dataops.api.errors import error_responses
from dataops.auth.models import User
from dataops.labeling import service
from dataops.labeling.schemas import LabelVersionOut

router = APIRouter(prefix="/v1", tags=["labels"])

_MAX_ID = 2**31 - 1
LabelStatus = Literal["submitted", "accepted", "rejected", "adjudicated", "deleted"]


@router.get(
    "/labels",
    response_model=list[LabelVersionOut],
    summary="List label versions",
    description=(
        "Label versions in id order (every version, superseded ones included), optionally "
        "only those of one image, batch, status or labeling task."
    ),
    responses={
        **error_responses(401, 403, 422),
        200: {
            "content": {
                "application/json": {
                    "example": [
                        {
                            "id": 12,
                            "image_id": 42,
                            "sha256": "9f2c6a1e" * 8,
                            "annotator": "alice",
                            "annotator_id": 3,
                            "batch_id": 5,
                            "guideline": "helmets@2",
                            "task": "default",
                            "payload": {"class": "helmet"},
                            "status": "accepted",
                            "source": "labelstudio",
                            "source_id": "default:881",
                            "source_updated_at": "2026-11-02T09:31:00Z",
                            "supersedes_id": None,
                            "created_by": "user:ops",
                            "created_at": "2026-11-02T09:31:00Z",
                        }
                    ]
                }
            }
        },
    },
)
def list_labels(
    session: SessionDep,
    _user: Annotated[User, Depends(require_roles("labeling_ops", "auditor", "scientist"))],
    image: Annotated[
        int | None, Query(ge=1, le=_MAX_ID, description="Only labels of this image.")
    ] = None,
    batch: Annotated[
        int | None, Query(ge=1, le=_MAX_ID, description="Only labels of this batch.")
    ] = None,
    status: Annotated[LabelStatus | None, Query(description="Only labels in this status.")] = None,
    task: Annotated[
        str | None,
        Query(min_length=1, max_length=128, pattern=r"^[^\x00]+$", description="Labeling task."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many.")] = 1000,
) -> list[LabelVersionOut]:
    versions = service.list_labels(
        session, image_id=image, batch_id=batch, status=status, task=task, limit=limit
    )
    return service.label_outs(session, versions)
