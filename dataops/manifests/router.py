"""Manifests over HTTP: list, inspect, read the datasheet, verify, and freeze a new one.

Manifests hold every vendor's labels, so vendors are refused everywhere here.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query
from pydantic import BaseModel

from dataops.api.deps import STAFF, SessionDep, actor, require_roles
from dataops.api.errors import error_responses
from dataops.auth.models import User
from dataops.dedup.schemas import LeakReport
from dataops.jobs.router import accept_job
from dataops.jobs.schemas import JobAccepted
from dataops.manifests import service
from dataops.manifests.create import check_request
from dataops.manifests.schemas import (
    REF_PATTERN,
    ManifestDetail,
    ManifestOut,
    ManifestRequest,
    VerifyReport,
)
from dataops.manifests.verify import verify_manifest as verify
from dataops.selection.tasks import manifest_task

router = APIRouter(prefix="/v1", tags=["manifests"])

Staff = Annotated[User, Depends(require_roles(*STAFF))]
Creators = Annotated[User, Depends(require_roles("scientist"))]
ManifestRef = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=REF_PATTERN,
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


@router.get(
    "/manifests/{ref}/leaks",
    response_model=LeakReport,
    summary="Get a manifest's leak report",
    description=(
        "Duplicate groups (as dedup knows them today) whose members sit in more than one of "
        "the manifest's splits, a page of groups at a time; `total_leaks` counts them all."
    ),
    responses={
        **error_responses(400, 401, 403, 404, 422),
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "source": "manifest:helmets-v1",
                        "groups_checked": 12,
                        "total_leaks": 1,
                        "leaks": [
                            {
                                "group_id": 7,
                                "representative": 42,
                                "splits": {"test": [57], "train": [42]},
                            }
                        ],
                    }
                }
            }
        },
    },
)
def get_leaks(
    session: SessionDep,
    _user: Staff,
    ref: ManifestRef,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many groups.")] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="Skip this many first.")] = 0,
) -> LeakReport:
    from dataops.manifests.leaks import manifest_leaks

    return manifest_leaks(session, ref, limit=limit, offset=offset)


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
    return verify(session, ref, body_only=body_only)


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
    checked = check_request(session, request)
    task = manifest_task(session, request.task, checked.batch_ids)
    params = request.model_copy(update={"task": task}).model_dump(mode="json")
    return accept_job(session, background, "manifest", params, actor=actor(user))
