"""Manifests over HTTP: list, inspect, read the datasheet, verify, and freeze a new one.

Manifests hold every vendor's labels, so vendors are refused everywhere here.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from dataops.api.deps import STAFF, SessionDep, actor, require_roles
from dataops.api.errors import error_responses
from dataops.auth.models import User
from dataops.jobs.router import JobAccepted, accept_job
from dataops.labeling.schemas import TaskName
from dataops.manifests import service
from dataops.manifests.schemas import ManifestDetail, ManifestOut, VerifyReport
from dataops.selection.tasks import manifest_task

router = APIRouter(prefix="/v1", tags=["manifests"])

Staff = Annotated[User, Depends(require_roles(*STAFF))]
Creators = Annotated[User, Depends(require_roles("scientist"))]
QueryValue = Annotated[str, Field(max_length=512, pattern=r"^[^\x00]*$")]
ManifestRef = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="A manifest name, its id (`sha256:<hex>`) or a unique hex prefix of 8+ digits.",
    ),
]

_SUMMARY: dict[str, Any] = {
    "name": "helmets-v1",
    "id": "sha256:" + "3b7e" * 16,
    "splits": {"train": 800, "val": 100, "test": 100},
    "path": "/data/blobs/manifests/3b7e.jsonl",
    "split_spec": "train=0.8,val=0.1,test=0.1",
    "seed": 0,
    "parent": None,
    "selection": {"task": "helmets"},
    "body_key": "manifests/3b7e.jsonl",
    "parquet_key": "manifests/3b7e.parquet",
    "datasheet_key": "manifests/3b7e.datasheet.json",
    "created_by": "user:sci",
    "created_at": "2026-11-02T09:31:00Z",
}


class ManifestRequest(BaseModel):
    """A new manifest's name, split seed and split ratios."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "helmets-v1", "seed": 0, "splits": service.DEFAULT_SPLITS},
                {
                    "name": "helmets-v2",
                    "splits": "train=0.8,val=0.2",
                    "query": {"site": "lab-3"},
                    "stratify_by": "label",
                    "parent": "helmets-v1",
                    "task": "helmets",
                },
            ]
        },
    )

    name: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="A new, unique name (letters, digits, . _ -).",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of the split draw.")
    splits: str = Field(
        default=service.DEFAULT_SPLITS,
        min_length=1,
        max_length=256,
        description="Split names and ratios, in order.",
    )
    from_batches: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] | None = Field(
        default=None,
        max_length=1000,
        description="Only images of these batches (default: every labeled image).",
    )
    query: dict[Annotated[str, Field(min_length=1, max_length=128)], QueryValue] = Field(
        default_factory=dict,
        max_length=16,
        description="Filters: `source` is the ingest source, any other key an image attribute.",
    )
    stratify_by: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"\S",
        description="`label` or an attribute: report each stratum's split balance.",
    )
    parent: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="Previous generation: its images keep their split, new duplicates join them.",
    )
    task: TaskName | None = Field(
        default=None,
        description="Labeling task whose accepted labels to freeze (a guideline's name); "
        "default: the task of `from_batches`, else the only task with accepted labels "
        "(several: refused, listing them).",
    )


class Datasheet(BaseModel):
    """A manifest's datasheet, as a JSON document and as Markdown."""

    name: str
    id: str
    document: dict[str, Any]
    markdown: str


@router.get(
    "/manifests",
    response_model=list[ManifestOut],
    summary="List manifests",
    description="Every named manifest, oldest first.",
    responses={
        **error_responses(401, 403, 422),
        200: {"content": {"application/json": {"example": [{**_SUMMARY, "rows": 1000}]}}},
    },
)
def list_manifests(session: SessionDep, _user: Staff) -> list[ManifestOut]:
    return [service.manifest_out(session, m) for m in service.list_manifests(session)]


@router.get(
    "/manifests/{ref}",
    response_model=ManifestDetail,
    summary="Get a manifest",
    description=(
        "A manifest's record, every name sharing its content, and its first rows (sha256, "
        "split, label, duplicate group) in sha256 order."
    ),
    responses={
        **error_responses(400, 401, 403, 404, 422),
        200: {
            "content": {
                "application/json": {
                    "example": {
                        **_SUMMARY,
                        "row_count": 1000,
                        "names": ["helmets-v1"],
                        "rows": [
                            {
                                "sha256": "9f2c6a1e" * 8,
                                "split": "train",
                                "label": {"class": "helmet"},
                                "dup_group_id": None,
                            }
                        ],
                    }
                }
            }
        },
    },
)
def get_manifest(
    session: SessionDep,
    _user: Staff,
    ref: ManifestRef,
    limit: Annotated[int, Query(ge=0, le=100_000, description="Rows to include.")] = 1000,
) -> ManifestDetail:
    manifest = service.get_manifest(session, ref)
    return service.manifest_detail(session, manifest, limit=limit)


@router.get(
    "/manifests/{ref}/datasheet",
    response_model=Datasheet,
    summary="Get a manifest's datasheet",
    description=(
        "The datasheet written with the manifest (scope, counts per split and class, split "
        "balance), as a JSON document and as Markdown."
    ),
    responses={
        **error_responses(400, 401, 403, 404, 422),
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "name": "helmets-v1",
                        "id": _SUMMARY["id"],
                        "document": {"splits": {"train": 800, "val": 100, "test": 100}},
                        "markdown": "# helmets-v1\n",
                    }
                }
            }
        },
    },
)
def get_datasheet(session: SessionDep, _user: Staff, ref: ManifestRef) -> Datasheet:
    manifest = service.get_manifest(session, ref)
    document, markdown = service.read_datasheet(manifest)
    return Datasheet(
        name=manifest.name, id=manifest.content_hash, document=document, markdown=markdown
    )


@router.post(
    "/manifests/{ref}/verify",
    response_model=VerifyReport,
    summary="Verify a manifest",
    description=(
        "Re-hashes the body and, unless `body_only`, the Parquet copy and every image it "
        "references. Problems are reported in the answer (`ok: false`), never as an error."
    ),
    responses={
        **error_responses(400, 401, 403, 404, 422),
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "name": "helmets-v1",
                        "id": _SUMMARY["id"],
                        "ok": True,
                        "body_only": False,
                        "problems": [],
                        "images_checked": 1000,
                        "missing": [],
                        "changed": [],
                    }
                }
            }
        },
    },
)
def verify_manifest(
    session: SessionDep,
    _user: Staff,
    ref: ManifestRef,
    body_only: Annotated[
        bool, Query(description="Check only the body and the database row count.")
    ] = False,
) -> VerifyReport:
    return service.verify_manifest(session, ref, body_only=body_only)


@router.post(
    "/manifests",
    status_code=202,
    response_model=JobAccepted,
    summary="Create a manifest",
    description=(
        "Checks the request (name free, splits valid) now and starts a `manifest` job that "
        "freezes the accepted labels of `task` (all labeled images, or those of `from_batches` "
        "and matching `query`) into a new immutable manifest: body, Parquet copy, datasheet "
        "and rows. With `parent`, images already in the parent keep their split. The job's "
        "result is the manifest."
    ),
    responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def create_manifest(
    session: SessionDep,
    background: BackgroundTasks,
    user: Creators,
    request: ManifestRequest,
) -> JobAccepted:
    service.check_request(
        session,
        request.name,
        seed=request.seed,
        splits=request.splits,
        from_batches=request.from_batches,
        stratify_by=request.stratify_by,
        parent=request.parent,
    )
    task = manifest_task(session, request.task, request.from_batches)
    params = {
        "name": request.name,
        "seed": request.seed,
        "splits": request.splits,
        "from_batches": request.from_batches,
        "query": request.query,
        "stratify_by": request.stratify_by,
        "parent": request.parent,
        "task": task,
    }
    return accept_job(session, background, "manifest", params, actor=actor(user))
