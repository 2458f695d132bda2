"""Shapes of a selection request and of the batch it creates, for the CLI and the API."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema
from pydantic_core import ErrorDetails

from dataops.database.dialect import as_utc
from dataops.labeling.schemas import PlainText
from dataops.scoring.schemas import MODEL_REF
from dataops.selection import registry
from dataops.selection.errors import InvalidSelection, literal

MAX_BATCH_SIZE = 100_000


def _known_strategy(name: str) -> str:
    if registry.get(name) is None:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(registry.names())}")
    return name


StrategyName = Annotated[
    str,
    AfterValidator(_known_strategy),
    WithJsonSchema({"type": "string", "enum": list(registry.names())}),
]
PurposeName = Literal["active_learning", "hard_negative", "audit", "relabel", "cold_start"]
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
_NAME = r"^[^\x00]{1,128}$"


class SelectRequest(BaseModel):
    """What to select: every field but ``strategy`` and ``size`` is optional."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {"strategy": "margin", "size": 500, "model": "helmet", "seed": 7},
                {
                    "strategy": "hard_negative",
                    "size": 300,
                    "class": "person",
                    "mode": "unlabeled",
                    "queue": "acme-boxes",
                },
            ]
        },
    )

    strategy: StrategyName
    size: int = Field(ge=1, le=MAX_BATCH_SIZE, description="How many images the batch gets.")
    purpose: PurposeName | None = Field(
        default=None,
        description="Defaults to hard_negative for that strategy, cold_start without a model, "
        "active_learning otherwise.",
    )
    seed: int = Field(
        default=0, ge=0, le=2**31 - 1, description="Same seed, same catalog: same batch."
    )
    model: str | None = Field(
        default=None,
        pattern=MODEL_REF,
        description="NAME or NAME:VERSION; defaults to the current version of the only model.",
    )
    class_name: str | None = Field(
        default=None,
        alias="class",
        pattern=_NAME,
        description="hard_negative: the class whose false positives to find.",
    )
    mode: Literal["labeled", "unlabeled"] | None = Field(
        default=None,
        description="hard_negative: among images labeled as another class, or unlabeled ones.",
    )
    queue: str | None = Field(default=None, pattern=_NAME, description="Vendor queue (name or id).")
    stratify_by: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Image attribute whose values share the batch in proportion to their size.",
    )
    task: str | None = Field(
        default=None,
        pattern=_NAME,
        description="Labeling task: with a queue, its guideline's name (another is refused); "
        "without one, the only task there is.",
    )
    allow_partial: bool = Field(
        default=False,
        description="Take what there is when fewer images are eligible than `size`, or cap "
        "`size` at the configured maximum; otherwise such a request is refused.",
    )


def select_request(values: Mapping[str, Any]) -> SelectRequest:
    """A request from loosely typed values (CLI options, stored job params, Python callers);
    a bad value raises ``InvalidSelection`` naming its field, as the service's own checks do."""
    try:
        return SelectRequest.model_validate(values)
    except ValidationError as exc:
        raise _invalid(exc.errors()[0]) from exc


def _bounds(field: str) -> tuple[Any, Any]:
    lo = hi = None
    for rule in SelectRequest.model_fields[field].metadata:
        lo = getattr(rule, "ge", lo)
        hi = getattr(rule, "le", hi)
    return lo, hi


def _invalid(error: ErrorDetails) -> InvalidSelection:
    loc = str(error["loc"][0]) if error["loc"] else "request"
    field = "class" if loc == "class_name" else loc
    got = literal(repr(error.get("input")))
    kind = error["type"]
    if kind in ("greater_than_equal", "less_than_equal") and loc in SelectRequest.model_fields:
        lo, hi = _bounds(loc)
        template = f"{{{field}}} must be between {lo} and {hi}, got {got}"
    elif kind == "literal_error":
        expected = literal((error.get("ctx") or {}).get("expected", ""))
        template = f"{{{field}}} must be {expected}, got {got}"
    elif kind == "value_error":
        template = literal(str(error["msg"]).removeprefix("Value error, "))
    else:
        template = f"{{{field}}}: {literal(error['msg'])}"
    return InvalidSelection(template, fields=(field,))


class BatchItemOut(BaseModel):
    image_id: int
    sha256: str
    uri: str
    position: int
    score: float | None


class BatchOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 12,
                    "status": "draft",
                    "purpose": "active_learning",
                    "strategy": "margin",
                    "params": {"requested": 2, "eligible": 18210, "task": "helmets"},
                    "seed": 7,
                    "model": "helmet:2",
                    "queue": "acme-boxes",
                    "size": 2,
                    "overlap": 0.2,
                    "gold": 0.05,
                    "requested_by": "user:alice",
                    "created_at": "2026-11-02T09:30:00Z",
                    "items": [
                        {
                            "image_id": 4211,
                            "sha256": "9f2c6a1e" + "0" * 56,
                            "uri": "/data/site-a/IMG_4211.jpg",
                            "position": 0,
                            "score": 0.998,
                        },
                        {
                            "image_id": 977,
                            "sha256": "0b7d4c3a" + "0" * 56,
                            "uri": "/data/site-b/IMG_0977.jpg",
                            "position": 1,
                            "score": 0.991,
                        },
                    ],
                }
            ]
        }
    )

    id: int
    status: str
    purpose: str
    strategy: str
    params: dict[str, Any]
    seed: int
    model: str | None = Field(description="`name:version` of the model version used, if any.")
    queue: str | None
    size: int
    overlap: float
    gold: float
    requested_by: str | None
    created_at: UtcDatetime
    items: list[BatchItemOut]


class CancelRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "size typo: asked for 5000"}]}
    )

    reason: PlainText | None = Field(
        default=None,
        max_length=500,
        description="Why, for the audit log.",
        examples=["size typo: asked for 5000"],
    )


class AssignRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"queue": "acme-ppe"}]}
    )

    queue: PlainText = Field(min_length=1, max_length=128, description="Vendor queue (name or id).")


class BatchChange(BaseModel):
    """What a cancel or an assign did to a batch."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 12,
                    "status": "cancelled",
                    "queue": "acme-boxes",
                    "task": "helmets",
                    "size": 500,
                    "released": 500,
                    "removed_tasks": 480,
                    "kept_tasks": 20,
                    "label_versions_kept": 20,
                    "dropped": [],
                    "pull_job_id": "9b1d0c2e4f6a4b8c9d0e1f2a3b4c5d6e",
                }
            ]
        }
    )

    id: int
    status: str
    queue: str | None
    task: str = Field(description="The labeling task: the queue's guideline name.")
    size: int = Field(description="Items the batch has now.")
    released: int = Field(default=0, description="Images no longer claimed by the batch.")
    removed_tasks: int = Field(
        default=0, description="Label Studio tasks deleted because nobody had labeled them."
    )
    kept_tasks: int = Field(
        default=0, description="Label Studio tasks kept because they hold annotations."
    )
    label_versions_kept: int = Field(default=0, description="Stored labels of the batch (kept).")
    dropped: list[int] = Field(
        default_factory=list,
        description="assign: image ids taken out because they are already labeled for the "
        "queue's task (their claims released).",
    )
    pull_job_id: str | None = Field(
        default=None,
        description="cancel of a sent batch: the pull that stores labels made on kept tasks.",
    )


class RequestRow(BaseModel):
    """A batch request: its select job and, once that finished, its batch."""

    job_id: str
    job_status: str
    progress_done: int
    progress_total: int
    error: str | None
    strategy: str
    size: int
    class_name: str | None
    queue: str | None
    requested_by: str | None
    created_at: UtcDatetime
    batch_id: int | None
    batch_status: str | None


class PreviewItem(BaseModel):
    position: int
    image_id: int
    file_name: str
    score: float | None
    thumbnail_url: str | None = Field(description="A signed media path; none without a queue.")


class PreviewPage(BaseModel):
    batch_id: int
    status: str
    total: int
    limit: int
    offset: int
    items: list[PreviewItem]
