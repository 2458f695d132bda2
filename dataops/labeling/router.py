"""Labeling over HTTP: vendors, guideline versions, vendor queues and their tasks, annotators,
and every label version.

Vendors see only their own queues and those queues' tasks; another vendor's queue answers 404
exactly like one that does not exist. Labels, guidelines, vendors and annotators span every
vendor, so vendors are refused; staff read them and labeling ops (and admins) write them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse

from dataops.api.deps import STAFF, SessionDep, VendorScopeDep, actor, require_roles
from dataops.api.errors import error_json, error_responses
from dataops.auth.models import User
from dataops.labeling import (
    annotators,
    examples,
    guideline_versions,
    imports,
    labels,
    queues,
    service,
    vendors,
)
from dataops.labeling.schemas import (
    AnnotatorMap,
    AnnotatorOut,
    GuidelineDetail,
    GuidelineOut,
    GuidelinePublish,
    GuidelinePublished,
    ImportReport,
    LabelImport,
    LabelVersionOut,
    QueueCreate,
    QueueCreated,
    QueueOut,
    QueueTaskList,
    VendorCreate,
    VendorCreated,
    VendorOut,
)
from dataops.selection.models import STATUSES

router = APIRouter(prefix="/v1")

_MAX_ID = 2**31 - 1
LabelStatus = Literal["submitted", "accepted", "rejected", "adjudicated", "released", "deleted"]
BatchStatus = Literal[STATUSES]  # type: ignore[valid-type]

Staff = Annotated[User, Depends(require_roles(*STAFF))]
Ops = Annotated[User, Depends(require_roles("labeling_ops"))]
QueueRef = Annotated[
    str,
    Path(pattern=r"^[^\x00-\x1f/]{1,128}$", description="Queue id or name."),
]
VendorFilter = Annotated[
    str | None,
    Query(pattern=r"^[^\x00-\x1f]{1,128}$", description="Only this vendor's (name or id)."),
]
GuidelineRef = Annotated[
    str,
    Path(
        pattern=r"^[a-z0-9][a-z0-9._-]{0,127}(:[vV]?[0-9]{1,9})?$",
        description="NAME (newest version), NAME:VERSION, or a sha256 prefix (8+ hex).",
    ),
]
_CREATED = "Created."
_EXISTING = "Already there with the same content: the existing one, unchanged."


def _example(value: object, description: str = "Success.") -> dict[str, object]:
    return {"description": description, "content": {"application/json": {"example": value}}}


def _created_or_existing(response: Response, created: bool) -> None:
    """201 for a new row; 200 when the same request had already created it."""
    response.status_code = 201 if created else 200


# --- vendors ------------------------------------------------------------------------------


@router.get(
    "/vendors",
    tags=["vendors"],
    response_model=list[VendorOut],
    summary="List vendors",
    description="Every labeling vendor by name, with how many queues and annotators it has.",
    responses={**error_responses(401, 403), 200: _example([examples.VENDOR])},
)
def list_vendors(session: SessionDep, _user: Staff) -> list[VendorOut]:
    return vendors.list_vendors(session)


@router.post(
    "/vendors",
    tags=["vendors"],
    status_code=201,
    response_model=VendorCreated,
    summary="Create a vendor",
    description=(
        "Registers a labeling vendor. Idempotent by name: creating an existing vendor again "
        "answers 200 with it (and `created: false`) instead of 201."
    ),
    responses={
        **error_responses(400, 401, 403, 413, 422),
        201: _example({**examples.VENDOR, "queues": 0, "annotators": 0, "created": True}, _CREATED),
        200: _example({**examples.VENDOR, "created": False}, _EXISTING),
    },
)
def create_vendor(
    session: SessionDep, user: Ops, body: VendorCreate, response: Response
) -> VendorCreated:
    vendor, created = vendors.create_vendor(session, body.name, actor=actor(user))
    _created_or_existing(response, created)
    return VendorCreated(**vendors.vendor_out(vendor).model_dump(), created=created)


# --- guidelines ---------------------------------------------------------------------------


@router.get(
    "/guidelines",
    tags=["guidelines"],
    response_model=list[GuidelineOut],
    summary="List guideline versions",
    description="Every published guideline version by name and version, or only one name's.",
    responses={**error_responses(401, 403, 422), 200: _example([examples.GUIDELINE])},
)
def list_guidelines(
    session: SessionDep,
    _user: Staff,
    name: Annotated[
        str | None,
        Query(pattern=r"^[a-z0-9][a-z0-9._-]{0,127}$", description="Only this guideline."),
    ] = None,
) -> list[GuidelineOut]:
    return [
        guideline_versions.guideline_out(g)
        for g in guideline_versions.list_guidelines(session, name)
    ]


@router.get(
    "/guidelines/{ref}",
    tags=["guidelines"],
    response_model=GuidelineDetail,
    summary="Get a guideline version",
    description=(
        "One guideline version with its full Markdown text (front matter included) and the "
        "Label Studio labeling config generated from it."
    ),
    responses={
        **error_responses(401, 403, 404, 422),
        200: _example(
            {
                **examples.GUIDELINE,
                "body": "---\nname: ppe-detection\nkind: detection\n...\n---\n\n# PPE ...",
                "label_config": '<View><Image name="image" value="$image"/>...</View>',
            }
        ),
    },
)
def get_guideline(session: SessionDep, _user: Staff, ref: GuidelineRef) -> GuidelineDetail:
    return guideline_versions.guideline_detail(guideline_versions.get_guideline(session, ref))


@router.post(
    "/guidelines",
    tags=["guidelines"],
    status_code=201,
    response_model=GuidelinePublished,
    summary="Publish a guideline version",
    description=(
        "Registers the text of a guideline file (YAML front matter, then Markdown) as the next "
        "version of its name; its id is the sha256 of the UTF-8 text and the Label Studio "
        "config is generated from its kind and classes. Publishing the same text again answers "
        "200 with the version already there. Versions are never edited: a queue stays pinned to "
        "its version, and a new version needs a new queue (and Label Studio project)."
    ),
    responses={
        **error_responses(400, 401, 403, 409, 413, 422),
        201: _example({**examples.GUIDELINE, "created": True}, _CREATED),
        200: _example({**examples.GUIDELINE, "created": False}, _EXISTING),
    },
)
def publish_guideline(
    session: SessionDep, user: Ops, body: GuidelinePublish, response: Response
) -> GuidelinePublished:
    guideline, created = guideline_versions.publish_guideline_text(
        session, body.markdown, name=body.name, actor=actor(user)
    )
    _created_or_existing(response, created)
    return GuidelinePublished(
        **guideline_versions.guideline_out(guideline).model_dump(), created=created
    )


# --- queues -------------------------------------------------------------------------------


@router.get(
    "/queues",
    tags=["queues"],
    response_model=list[QueueOut],
    summary="List queues",
    description=(
        "Queues by name with their vendor, pinned guideline version and Label Studio "
        "connection. Vendors get only their own queues."
    ),
    responses={**error_responses(401, 403, 404, 422), 200: _example([examples.QUEUE])},
)
def list_queues(
    session: SessionDep,
    scope: VendorScopeDep,
    vendor: VendorFilter = None,
) -> list[QueueOut]:
    return service.visible_queues(session, scope_vendor=scope.vendor_id, vendor=vendor)


@router.get(
    "/queues/{ref}",
    tags=["queues"],
    response_model=QueueOut,
    summary="Get a queue",
    description=(
        "One queue's settings. For a vendor, another vendor's queue is 404, like one that does "
        "not exist."
    ),
    responses={**error_responses(401, 403, 404, 422), 200: _example(examples.QUEUE)},
)
def get_queue(session: SessionDep, scope: VendorScopeDep, ref: QueueRef) -> QueueOut:
    return service.queue_view(session, ref, scope_vendor=scope.vendor_id)


@router.post(
    "/queues",
    tags=["queues"],
    status_code=201,
    response_model=QueueCreated,
    summary="Create a queue",
    description=(
        "Creates a vendor queue pinned to one guideline version (`NAME` pins the newest) and "
        "one Label Studio connection, with its overlap share, gold share and turnaround. "
        "Repeating the request answers 200 with the existing queue; the same name with other "
        "settings, or another guideline version, is 409: a new guideline version needs a new "
        "queue, so labels under different versions are never mixed in one Label Studio "
        "project. Label Studio OSS has no per-project permissions: a vendor that must not see "
        "other vendors' work needs its own instance (a named connection)."
    ),
    responses={
        **error_responses(400, 401, 403, 404, 409, 413, 422),
        201: _example(
            {**examples.QUEUE, "batches": 0, "ls_project_id": None, "created": True}, _CREATED
        ),
        200: _example({**examples.QUEUE, "created": False}, _EXISTING),
    },
)
def create_queue(
    session: SessionDep, user: Ops, body: QueueCreate, response: Response
) -> QueueCreated:
    queue, created = queues.create_queue(session, body, actor=actor(user))
    _created_or_existing(response, created)
    return QueueCreated(**queues.queue_out(session, queue).model_dump(), created=created)


@router.get(
    "/queues/{ref}/tasks",
    tags=["queues"],
    response_model=QueueTaskList,
    summary="List a queue's tasks",
    description=(
        "Staff: the images of the queue's batches in batch and pick order, each with its "
        "batch's status, task key, gold and overlap flags, its Label Studio task once pushed, "
        "and a signed, expiring `/v1/media` URL that needs no token (valid for "
        "DATAOPS_SIGNED_URL_TTL seconds). Vendors: only their own queues' pushed tasks, in "
        "push order, as opaque task keys with a `/v1/media/t/{key}` URL; nothing names an "
        "image, a batch or gold. Another vendor's queue is 404."
    ),
    responses={**error_responses(401, 403, 404, 422), 200: _example(examples.TASK_LIST)},
)
def list_queue_tasks(
    session: SessionDep,
    scope: VendorScopeDep,
    ref: QueueRef,
    batch: Annotated[
        int | None, Query(ge=1, le=_MAX_ID, description="Only this batch's items.")
    ] = None,
    status: Annotated[BatchStatus | None, Query(description="Only batches in this status.")] = None,
    limit: Annotated[
        int, Query(ge=1, le=5000, description="At most this many.")
    ] = service.TASK_LIST_LIMIT,
    offset: Annotated[int, Query(ge=0, le=_MAX_ID, description="Skip this many.")] = 0,
) -> QueueTaskList:
    return service.queue_tasks(
        session,
        ref,
        vendor_id=scope.vendor_id,
        batch_id=batch,
        status=status,
        limit=limit,
        offset=offset,
    )


# --- annotators ---------------------------------------------------------------------------


@router.get(
    "/annotators",
    tags=["annotators"],
    response_model=list[AnnotatorOut],
    summary="List annotators",
    description=(
        "Annotators with their vendor, Label Studio account and how the mapping was made "
        "(`ls_user_id`, `import` or `manual`), optionally of one vendor or connection."
    ),
    responses={**error_responses(401, 403, 404, 422), 200: _example([examples.ANNOTATOR])},
)
def list_annotators(
    session: SessionDep,
    _user: Staff,
    vendor: VendorFilter = None,
    connection: Annotated[
        str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Only this instance.")
    ] = None,
) -> list[AnnotatorOut]:
    return annotators.list_annotators(session, vendor=vendor, connection=connection)


@router.post(
    "/annotators",
    tags=["annotators"],
    response_model=AnnotatorOut,
    summary="Map a Label Studio account",
    description=(
        "Ties a Label Studio user id on one connection to a person (by email) and their vendor, "
        "before or after their labels arrive. Repeating it returns the same annotator; a "
        "mapping that would give one account two people, or one person two accounts on an "
        "instance, is 409."
    ),
    responses={
        **error_responses(400, 401, 403, 404, 409, 413, 422),
        200: _example(examples.ANNOTATOR),
    },
)
def map_annotator(session: SessionDep, user: Ops, body: AnnotatorMap) -> AnnotatorOut:
    annotator = annotators.map_annotator(session, body, actor=actor(user))
    return annotators.annotator_out(session, annotator)


# --- labels -------------------------------------------------------------------------------


@router.get(
    "/labels",
    tags=["labels"],
    response_model=list[LabelVersionOut],
    summary="List label versions",
    description=(
        "Label versions in id order (every version, superseded ones included), optionally "
        "only those of one image, batch, status or labeling task."
    ),
    responses={
        **error_responses(401, 403, 422),
        200: {"content": {"application/json": {"example": [examples.LABEL_VERSION]}}},
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
    limit: Annotated[
        int, Query(ge=1, le=10_000, description="At most this many.")
    ] = labels.LIST_LIMIT,
) -> list[LabelVersionOut]:
    versions = labels.list_labels(
        session, image_id=image, batch_id=batch, status=status, task=task, limit=limit
    )
    return labels.label_outs(session, versions)


@router.post(
    "/labels/import",
    tags=["labels"],
    response_model=ImportReport,
    summary="Import a label file",
    description=(
        "All or nothing, like `dataops labels import`: every row is checked first (image known "
        "and usable, label valid for the guideline); any problem answers 422 with one "
        "`details` entry per bad row and stores nothing. Importing the same file again creates "
        "nothing (`existing` counts those rows). Label Studio exports: use the JSON export "
        "(JSON_MIN is refused); every result type dataops does not store (polygons, key "
        "points, free text...) is a bad row, never dropped; `path_map` maps Label Studio's "
        "own image paths to catalog locations. CVAT for images 1.1 XML (`format: cvat`) needs "
        "`annotator`: the file does not say who labeled."
    ),
    responses={
        **error_responses(400, 401, 403, 404, 413, 422),
        200: _example({"rows": 2, "created": 2, "existing": 0, "skipped": 0, "errors": []}),
    },
)
def import_labels(session: SessionDep, user: Ops, body: LabelImport) -> ImportReport | JSONResponse:
    suffix = {"csv": ".csv", "labelstudio": ".json", "cvat": ".xml"}[body.format]
    report = imports.import_labels(
        session,
        body.content.encode("utf-8"),
        body,
        filename=f"labels{suffix}",
        actor=actor(user),
    )
    return _rejected_or(report)


def _rejected_or(report: ImportReport) -> ImportReport | JSONResponse:
    if not report.errors:
        return report
    return error_json(
        422,
        "label_import_rejected",
        f"{len(report.errors)} problems in the file; nothing was imported",
        details=[error.model_dump() for error in report.errors],
    )
