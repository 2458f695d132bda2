"""Audit requests and the shapes the CLI and API print for audits."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dataops.audits.errors import AuditInputError, literal

MAX_ID = 2**31 - 1
# A bound on the bootstrap, so one request cannot hold a worker for hours.
MAX_RESAMPLES = 100_000

Request = TypeVar("Request", bound=BaseModel)


class AuditRequest(BaseModel):
    """Run an audit: the batch, the gate it must reach and how the metrics are computed.

    The CLI command, the HTTP route and the job all take this model; its defaults are the
    only ones.
    """

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"batch_id": 5, "gate": 0.95}]}
    )

    batch_id: int = Field(ge=1, le=MAX_ID, description="The batch to audit.")
    gate: float = Field(
        default=0.95,
        ge=0.0,
        le=1.0,
        description="Accept the batch when its pass rate is at least this.",
    )
    seed: int = Field(default=0, ge=0, description="Seed of the bootstrap.")
    resamples: int = Field(
        default=1000,
        ge=0,
        le=MAX_RESAMPLES,
        description="Bootstrap resamples for the confidence intervals (0: none).",
    )
    gold_threshold: float = Field(
        default=0.9,
        ge=0.0,
        le=1.0,
        description="Gold accuracy an annotator needs to be flagged as passing.",
    )
    task: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The labeling task, when the batch has labels for several.",
    )


class AgreementRequest(BaseModel):
    """Agreement on a long-form ratings file (item, annotator, label)."""

    model_config = ConfigDict(extra="forbid")

    level: Literal["nominal", "ordinal", "interval"] = Field(
        default="nominal", description="Level of measurement (the distance for alpha)."
    )
    resamples: int = Field(
        default=0,
        ge=0,
        le=MAX_RESAMPLES,
        description="Bootstrap resamples for 95% confidence intervals (0: none).",
    )
    seed: int = Field(default=0, ge=0, description="Seed of the bootstrap.")
    categories: list[str] | None = Field(
        default=None, description="Order of ordinal text labels, e.g. low, mid, high."
    )
    weights: Literal["linear", "quadratic"] | None = Field(
        default=None, description="Also report weighted kappa over the category order."
    )


def parse(model: type[Request], values: Mapping[str, Any]) -> Request:
    """The request, or an ``AuditInputError`` naming the first field that is wrong."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        message = str(first["msg"])
        if first["type"] == "extra_forbidden":
            raise AuditInputError(f"unknown field {field!r}") from None
        if message.startswith("Input should be "):
            message = "must be " + message.removeprefix("Input should be ")
        detail = f"{message[:1].lower()}{message[1:]}, got {first['input']!r}"
        if field not in model.model_fields:
            raise AuditInputError(detail) from None
        raise AuditInputError(f"{{{field}}} {literal(detail)}", fields=(field,)) from None


class AuditOut(BaseModel):
    """One audit row plus the gate numbers a reader looks for first."""

    id: int
    batch_id: int | None
    decision: str
    gate: float
    pass_rate: float | None
    n_items: int
    n_passed: int
    n_disputed: int
    n_relabeled: int = 0
    n_released: int = 0
    relabel_batch_id: int | None
    report_json_key: str | None
    report_html_key: str | None
    created_by: str | None
    created_at: datetime


class AuditDetail(AuditOut):
    metrics: dict[str, Any]
