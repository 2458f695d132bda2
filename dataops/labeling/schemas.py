"""Shapes the CLI and API print, and the requests they send."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from dataops.audits import policy as relabel_policy
from dataops.database.dialect import as_utc
from dataops.errors import DataopsError
from dataops.labeling.path_map import path_map_problem

# SQLite returns stored UTC timestamps without their zone.
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class VendorOut(BaseModel):
    id: int
    name: str
    queues: int = 0
    annotators: int = 0
    created_at: UtcDatetime


class GuidelineOut(BaseModel):
    id: int
    name: str
    version: int
    ref: str
    sha256: str
    kind: str
    classes: list[str]
    created_by: str | None
    created_at: UtcDatetime


class GuidelineDetail(GuidelineOut):
    body: str
    label_config: str


class QueueOut(BaseModel):
    id: int
    name: str
    vendor: str
    vendor_id: int
    guideline: str
    guideline_id: int
    guideline_sha256: str
    kind: str
    connection: str
    overlap: float | None = Field(
        description="Share of items answered twice (null for vendor tokens)."
    )
    gold: float | None = Field(description="Share of gold items (null for vendor tokens).")
    due_days: float | None
    on_reject: str = "relabel_failed"
    relabel_answers: int = 3
    relabel_agree: int = 2
    relabel_rounds: int = 2
    accept_rule: str = "majority"
    ls_project_id: int | None
    batches: int = 0
    created_at: UtcDatetime


class AnnotatorOut(BaseModel):
    id: int
    name: str
    email: str | None
    vendor: str | None
    vendor_id: int | None
    connection: str | None
    ls_user_id: int | None
    mapped_by: str
    created_at: UtcDatetime


_MAX_ID = 2**31 - 1
# The Label Studio instance of DATAOPS_LABELSTUDIO_URL / _TOKEN.
DEFAULT_CONNECTION = "default"
Request = TypeVar("Request", bound=BaseModel)
OnReject = Literal["relabel_failed", "relabel_all", "release"]


def parse_request(
    model: type[Request], values: Mapping[str, Any], error: type[DataopsError] = DataopsError
) -> Request:
    """A request built from a face's own arguments (the CLI's options, a script's keywords);
    a bad value raises ``error`` naming the field, so each face spells it its own way."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        message = str(first["msg"])
        if message.startswith("Input should be "):
            message = "must be " + message.removeprefix("Input should be ")
        detail = f"{message[:1].lower()}{message[1:]}, got {first.get('input')!r}"
        if message.startswith("Value error, "):
            detail = message.removeprefix("Value error, ")
        if field not in model.model_fields:
            raise error(f"{field or 'request'}: {detail}") from None
        literal = detail.replace("{", "{{").replace("}", "}}")
        raise error(f"{{{field}}} {literal}", fields=(field,)) from None


def _plain_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode text") from None
    return value


PlainText = Annotated[str, AfterValidator(_plain_text)]
TaskName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00]+$")]


class VendorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "acme"}]})

    name: PlainText = Field(
        min_length=1,
        max_length=128,
        description="Unique; letters, digits, spaces, '.', '_', '-', '@', '+'; not only digits.",
    )


class VendorCreated(VendorOut):
    created: bool = Field(description="False when a vendor of that name already existed.")


class GuidelinePublish(BaseModel):
    """A guideline version as the text of a ``guidelines/<name>/v<N>.md`` file."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "ppe-detection",
                    "markdown": (
                        "---\nname: ppe-detection\nkind: detection\nclasses:\n"
                        "  - person: Every visible human being.\n"
                        "  - helmet: A safety hard hat, worn or not.\n---\n\n"
                        "# PPE (detection)\n\nDraw a tight box around every person and "
                        "helmet.\n"
                    ),
                }
            ]
        },
    )

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9._-]{0,127}$",
        description="The guideline's name; must equal `name` in the front matter.",
    )
    markdown: PlainText = Field(
        min_length=1,
        max_length=1_000_000,
        description=(
            "YAML front matter between `---` lines (name, kind: classification or detection, "
            "classes: a list of `Name: one-line definition`), then the Markdown body. Its "
            "sha256 (UTF-8) is the version id, so the text of a published file is the same "
            "version."
        ),
    )


class GuidelinePublished(GuidelineOut):
    created: bool = Field(description="False when exactly this text was already published.")


class QueueCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "acme-ppe",
                    "vendor": "acme",
                    "guideline": "ppe-detection:1",
                    "overlap": 0.2,
                    "gold": 0.05,
                    "due": "3d",
                    "connection": "default",
                }
            ]
        },
    )

    name: PlainText = Field(min_length=1, max_length=128, description="Unique queue name.")
    vendor: (
        Annotated[int, Field(ge=1, le=_MAX_ID)]
        | Annotated[PlainText, Field(min_length=1, max_length=128)]
    ) = Field(description="Vendor name or id.")
    guideline: str = Field(
        pattern=r"^[a-z0-9][a-z0-9._-]{0,127}(:[vV]?[0-9]{1,9})?$",
        description="NAME (its newest version, then pinned) or NAME:VERSION.",
    )
    overlap: float = Field(
        default=0.0, ge=0.0, le=1.0, allow_inf_nan=False, description="Share labeled by 2+."
    )
    gold: float = Field(
        default=0.0, ge=0.0, le=0.5, allow_inf_nan=False, description="Share of gold items."
    )
    due: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,6}(\.[0-9]{1,6})?[hdwHDW]?$",
        description="Turnaround, e.g. `3d`, `12h`, `2w` (at most 365 days).",
    )
    on_reject: OnReject = Field(
        default=cast(OnReject, relabel_policy.DEFAULT_ON_REJECT),
        description=(
            "What a rejected batch does with its answered items: `relabel_failed` sends the "
            "items that failed the audit to a relabel batch and releases the rest (answers "
            "kept, images selectable again); `relabel_all` relabels every answered item; "
            "`release` releases them all."
        ),
    )
    relabel_answers: int = Field(
        default=relabel_policy.DEFAULT_RELABEL_ANSWERS,
        ge=2,
        le=relabel_policy.MAX_RELABEL_ANSWERS,
        description="Answers asked for each item of a relabel batch.",
    )
    relabel_agree: int = Field(
        default=relabel_policy.DEFAULT_RELABEL_AGREE,
        ge=2,
        le=9,
        description="Matching answers that accept a relabel item (a majority: 2 of 3).",
    )
    relabel_rounds: int = Field(
        default=relabel_policy.DEFAULT_RELABEL_ROUNDS,
        ge=0,
        le=relabel_policy.MAX_RELABEL_ROUNDS,
        description="Relabel batches at most in one chain; then unresolved items are released.",
    )
    accept_rule: Literal["majority", "consensus"] = Field(
        default=cast(Literal["majority", "consensus"], relabel_policy.DEFAULT_ACCEPT_RULE),
        description=(
            "How an audit picks an item's accepted label: `majority` (ties are "
            "disputed) or `consensus` (CROWDLAB: answers weighed by annotator skill and the "
            "model that scored the batch; the majority where no model scored it)."
        ),
    )
    connection: str = Field(
        default=DEFAULT_CONNECTION,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Label Studio instance: `default` or a configured connection name.",
    )


class QueueCreated(QueueOut):
    created: bool = Field(description="False when the queue existed with the same settings.")


class QueueTask(BaseModel):
    """One image of a queue's batch, with a signed URL its annotator's browser can load."""

    item_id: int
    batch_id: int
    status: str = Field(description="The batch's status: draft, sent, in_progress, ...")
    image_id: int
    sha256: str
    position: int
    ls_task_id: int | None = Field(description="The Label Studio task, once pushed.")
    pushed_at: UtcDatetime | None
    key: str | None = Field(default=None, description="The task key, once pushed.")
    is_gold: bool = False
    is_overlap: bool = False
    media_url: str = Field(description="Signed for this image and queue; needs no token.")
    media_expires_at: UtcDatetime


class VendorTask(BaseModel):
    """A pushed task as its vendor sees it: an opaque key, the same shape for every task."""

    key: str = Field(description="The task key (also `data.dataops_item` in Label Studio).")
    status: str = Field(description="The batch's status: sent, in_progress, ...")
    ls_task_id: int | None = Field(description="The Label Studio task.")
    pushed_at: UtcDatetime | None
    media_url: str = Field(description="Signed for this task only; needs no token.")
    media_expires_at: UtcDatetime


class QueueTaskList(BaseModel):
    queue_id: int
    tasks: list[QueueTask] | list[VendorTask]
    limit: int
    offset: int


class AnnotatorMap(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "connection": "default",
                    "vendor": "acme",
                    "email": "alice@acme.example",
                    "ls_user_id": 17,
                }
            ]
        },
    )

    connection: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="The Label Studio instance."
    )
    vendor: (
        Annotated[int, Field(ge=1, le=_MAX_ID)]
        | Annotated[PlainText, Field(min_length=1, max_length=128)]
    ) = Field(description="Vendor name or id.")
    email: PlainText = Field(min_length=3, max_length=256, description="The person's email.")
    ls_user_id: int = Field(ge=1, le=_MAX_ID, description="Their user id on that instance.")


class LabelVersionOut(BaseModel):
    id: int
    image_id: int
    sha256: str
    annotator: str | None
    annotator_id: int | None
    batch_id: int | None
    guideline: str | None
    task: str
    payload: dict[str, Any]
    status: str
    source: str
    source_id: str
    source_updated_at: UtcDatetime | None
    supersedes_id: int | None
    created_by: str | None
    created_at: UtcDatetime


class RowError(BaseModel):
    """One problem in a label file, located so the person fixing it can find it."""

    row: int
    line: int | None = None
    field: str
    value: str | None = None
    message: str


class ImportReport(BaseModel):
    rows: int = 0
    created: int = 0
    existing: int = 0
    skipped: int = 0
    errors: list[RowError] = []


class LabelImportOptions(BaseModel):
    """How to read and store a label file: what `dataops labels import` takes beside the file,
    and what the HTTP body carries beside its text."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["csv", "labelstudio", "cvat"] | None = Field(
        default=None,
        description="`csv` (image,annotator,label), a Label Studio JSON export, or `cvat` "
        "(CVAT for images 1.1 XML; needs `annotator`). Default: from the file's name and text.",
    )
    annotator: PlainText | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Who made the labels of a CVAT export (name or email).",
    )
    accept: bool = Field(default=False, description="Labels vetted elsewhere: store as accepted.")
    task: TaskName | None = Field(
        default=None, description="Labeling task (default: the guideline's name, else `default`)."
    )
    guideline: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[a-z0-9][a-z0-9._:-]*$",
        description="Check labels against this guideline (NAME[:VERSION]).",
    )
    vendor: (
        Annotated[int, Field(ge=1, le=_MAX_ID)]
        | Annotated[PlainText, Field(min_length=1, max_length=128)]
        | None
    ) = Field(default=None, description="The vendor the annotators work for (name or id).")
    connection: str = Field(
        default=DEFAULT_CONNECTION,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="The Label Studio instance a JSON export came from.",
    )
    path_map: list[Annotated[str, Field(min_length=3, max_length=1000, pattern=r"^[^=]+=.+$")]] = (
        Field(
            default_factory=list,
            max_length=32,
            description="Label Studio exports: `PREFIX=ROOT` entries; a task image starting "
            "with PREFIX is looked up as ROOT + the rest (`/data/local-files/?d=P` reads as "
            "`/data/local-files/P`). Tasks dataops pushed are found by their task key instead.",
            examples=[["/data/upload/=/srv/label-studio/media/upload/"]],
        )
    )

    @field_validator("path_map", mode="before")
    @classmethod
    def _path_map_form(cls, value: Any) -> Any:
        """Every face says what a path map entry looks like, not only which pattern failed."""
        for spec in value if isinstance(value, list) else ():
            if isinstance(spec, str) and (problem := path_map_problem(spec)):
                raise ValueError(problem)
        return value


class LabelImport(LabelImportOptions):
    """A label file's text, as `dataops labels import` reads it from disk."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "format": "csv",
                    "content": "image,annotator,label\n" + "9f2c6a1e" * 8 + ",curator,helmet\n",
                    "accept": True,
                    "guideline": "helmets:2",
                }
            ]
        },
    )

    format: Literal["csv", "labelstudio", "cvat"] = Field(
        description="`csv` (image,annotator,label), a Label Studio JSON export, or `cvat` "
        "(CVAT for images 1.1 XML; needs `annotator`)."
    )
    content: str = Field(
        min_length=1,
        pattern=r"^[^\x00]*$",
        description="The file's text. CSV images are a sha256 or an absolute path/URI they "
        "were ingested from.",
    )
