"""Label-quality requests and answers: one request model shared by the CLI, HTTP and the job."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Source = Literal["kfold", "imported", "predictions"]


class LabelQualityRequest(BaseModel):
    """Find label issues among a task's live accepted and submitted labels.

    ``source``: ``kfold`` trains a logistic-regression head on the model's embeddings, one
    fold held out at a time, so every label is judged by a head that never saw it;
    ``imported`` reads class probabilities from ``probabilities`` (a CSV: ``sha256`` then one
    column per class) that the caller declares out-of-sample with ``out_of_sample``;
    ``predictions`` (the model's stored predictions) is refused, see the error it gives.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"task": "default", "model": "clothing:3", "folds": 5}]},
    )

    task: str = "default"
    model: str | None = Field(default=None, description="name or name:version; kfold only")
    source: Source = "kfold"
    folds: int = Field(default=5, ge=2, le=20)
    seed: int = 0
    probabilities: str | None = Field(default=None, description="CSV path; imported only")
    out_of_sample: bool = False


class IssuesRequest(BaseModel):
    """Which stored scores to read: the newest run of a task (and model), or one run."""

    model_config = ConfigDict(extra="forbid")

    task: str | None = None
    model: str | None = None
    run: int | None = None
    issues_only: bool = True
    limit: int = Field(default=100, ge=0, le=100_000)


class LabelQualityOut(BaseModel):
    label_version_id: int
    image_id: int
    sha256: str
    given_class: str
    suggested_class: str
    quality: float
    is_issue: bool


class RunOut(BaseModel):
    id: int
    task: str
    source: str
    model: str | None
    params: dict[str, Any]
    classes: list[str]
    labels: int
    issues: int
    per_class: dict[str, Any]
    created_by: str | None
    created_at: datetime


class IssuesOut(BaseModel):
    run: RunOut
    labels: list[LabelQualityOut]
