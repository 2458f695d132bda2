"""Manifest shapes: the create request every face takes, and what the CLI and API print.

The request model holds the defaults of ``manifest create`` once; the CLI, the HTTP route and
the job handler all build it, so the three faces cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dataops.errors import DataopsError
from dataops.labeling.schemas import TaskName
from dataops.manifests.errors import escaped

DEFAULT_SPLITS = "train=0.8,val=0.1,test=0.1"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
QueryValue = Annotated[str, Field(max_length=512, pattern=r"^[^\x00]*$")]


def check_name(name: str) -> str:
    """Names become file names in exports and datasheets, so keep them plain."""
    if not _NAME.fullmatch(name):
        raise DataopsError(
            f"bad manifest name {escaped(repr(name))}: use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            fields=("name",),
        )
    return name


def parse_query(items: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` filters: ``source`` is the ingest source, any other key an attribute."""
    query: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DataopsError(
                f"{{query}} expects KEY=VALUE (e.g. site=lab-3), got {escaped(repr(item))}",
                fields=("query",),
            )
        if key in query and query[key] != value:
            raise DataopsError(
                f"{{query}} gives {escaped(repr(key))} twice with different values",
                fields=("query",),
            )
        query[key] = value
    return query


class ManifestRequest(BaseModel):
    """A new manifest's name, scope, split seed and split ratios."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "helmets-v1", "seed": 0, "splits": DEFAULT_SPLITS},
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
        pattern=NAME_PATTERN,
        description="A new, unique name (letters, digits, . _ -).",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of the split draw.")
    splits: str = Field(
        default=DEFAULT_SPLITS,
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
        pattern=REF_PATTERN,
        description="Previous generation: its images keep their split, new duplicates join them.",
    )
    task: TaskName | None = Field(
        default=None,
        description="Labeling task whose accepted labels to freeze (a guideline's name); "
        "default: the task of `from_batches`, else the only task with accepted labels "
        "(several: refused, listing them).",
    )
    exclude_label_issues: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="A label-quality run id: leave out the labels it flagged as probable "
        "errors (the run is recorded in the manifest's selection).",
    )

    @classmethod
    def of(cls, given: Mapping[str, Any]) -> ManifestRequest:
        """The request from values a caller gave (``None``: not given, take the default).

        Refusals name the field, so each face can spell it its own way.
        """
        values = {key: value for key, value in given.items() if value is not None}
        if isinstance(values.get("name"), str):
            check_name(values["name"])
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "name"
            message = escaped(first["msg"][:1].lower() + first["msg"][1:])
            raise DataopsError(f"{{{field}}}: {message}", fields=(field,)) from None


class ManifestSummary(BaseModel):
    """One named manifest; ``id`` is the content hash, ``splits`` the image count per split."""

    name: str
    id: str
    splits: dict[str, int]
    path: str
    split_spec: str
    seed: int
    parent: str | None
    selection: dict[str, Any]
    body_key: str
    parquet_key: str
    datasheet_key: str | None
    rows_files: dict[str, str] = {}
    created_by: str | None
    created_at: datetime


class ManifestOut(ManifestSummary):
    """``manifest create`` and ``manifest list``: the record with its row count."""

    rows: int


class ManifestListItem(BaseModel):
    """One line of the manifest list: what a reader compares, no storage locations."""

    name: str
    id: str
    rows: int
    splits: dict[str, int]
    parent: str | None
    created_by: str | None
    created_at: datetime


class ManifestPage(BaseModel):
    """Manifests newest first, one page; ``more`` says whether an older page follows."""

    manifests: list[ManifestListItem]
    limit: int
    offset: int
    more: bool


class RowOut(BaseModel):
    sha256: str
    split: str
    label: dict[str, Any] | None
    dup_group_id: int | None


class ManifestDetail(ManifestSummary):
    """``manifest show``: the record, every name sharing its content, and its rows."""

    row_count: int
    names: list[str]
    rows: list[RowOut]


class ImageProblem(BaseModel):
    """An image a manifest references that is missing or no longer has its recorded bytes."""

    sha256: str
    location: str
    problem: str
    actual_sha256: str | None = None


class VerifyReport(BaseModel):
    name: str
    id: str
    ok: bool
    body_only: bool
    problems: list[str]
    images_checked: int
    missing: list[ImageProblem]
    changed: list[ImageProblem]


class SplitMove(BaseModel):
    sha256: str
    before: str
    after: str


class Relabel(BaseModel):
    sha256: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class DiffReport(BaseModel):
    """What changed from manifest ``a`` to ``b``; any split move of a shared image is a leak."""

    a: str
    b: str
    a_id: str
    b_id: str
    counts: dict[str, int]
    added: list[str]
    removed: list[str]
    relabelled: list[Relabel]
    split_moves: list[SplitMove]
    straddling_groups: list[int]
    leak: bool
    class_counts: dict[str, dict[str, dict[str, int]]]
    truncated: bool
