"""Shapes the CLI and API print for model versions and scoring runs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from dataops.database.dialect import as_utc
from dataops.scoring.errors import InvalidModel
from dataops.scoring.inference import InputSpec

UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]

MODEL_REF = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}(:v?[0-9]{1,9})?$"
MAX_INPUT_SIDE = 4096


MODEL_VERSION_EXAMPLE: dict[str, Any] = {
    "id": 3,
    "name": "helmet",
    "version": 2,
    "ref": "helmet:2",
    "sha256": "4be1c0d9" + "0" * 56,
    "classes": ["helmet", "no_helmet"],
    "input_spec": {
        "size": [224, 224],
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "channels": 3,
    },
    "has_embedding": True,
    "is_current": True,
    "predictions": 120000,
    "created_by": "cli:alice",
    "created_at": "2026-11-02T09:30:00Z",
}


class ModelVersionOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [MODEL_VERSION_EXAMPLE]})

    id: int
    name: str
    version: int
    ref: str = Field(description="`name:version`, what `--model` accepts.")
    sha256: str
    classes: list[str]
    input_spec: dict[str, Any]
    has_embedding: bool = Field(description="The model's forward also returns an embedding.")
    is_current: bool = Field(description="`--model NAME` without a version means this one.")
    predictions: int = Field(default=0, description="Images scored by this version.")
    created_by: str | None
    created_at: UtcDatetime


class ModelList(BaseModel):
    models: list[ModelVersionOut]


class ScoreRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"batch_size": 64, "rescore": False}]}
    )

    batch_size: int = Field(default=64, ge=1, le=4096, description="Images per forward pass.")
    workers: int | None = Field(
        default=None, ge=0, le=64, description="Decoding processes; empty picks by CPU count."
    )
    rescore: bool = Field(
        default=False, description="Score images that already have a prediction again."
    )


class ScoreParams(ScoreRequest):
    """A ``score`` job: the request plus the model version it runs (``name:version``)."""

    model: str | None = Field(
        default=None, pattern=MODEL_REF, description="NAME or NAME:VERSION to score with."
    )


def score_params(values: Mapping[str, Any]) -> ScoreParams:
    """Job params from loosely typed values (CLI options); a bad one raises ``InvalidModel``
    naming its field."""
    try:
        return ScoreParams.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "model"
        message = str(first["msg"]).replace("{", "{{").replace("}", "}}")
        got = repr(first.get("input")).replace("{", "{{").replace("}", "}}")
        raise InvalidModel(
            f"{{{field}}}: {message[:1].lower()}{message[1:]}, got {got}", fields=(field,)
        ) from None


class RegisterModelRequest(BaseModel):
    """A TorchScript file on the server, registered like `dataops model register` does."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "helmet",
                    "classes": ["helmet", "no_helmet"],
                    "path": "/data/incoming/models/helmet-2026-11-02.pt",
                },
                {
                    "name": "helmet",
                    "classes": ["helmet", "no_helmet"],
                    "path": "/data/incoming/models/helmet-traced.pt",
                    "input_spec": {
                        "size": [224, 224],
                        "mean": [0.485, 0.456, 0.406],
                        "std": [0.229, 0.224, 0.225],
                        "channels": 3,
                    },
                    "current": False,
                },
            ]
        },
    )

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="Model name; versions are numbered per name.",
    )
    classes: list[Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00]+$")]] = (
        Field(min_length=2, max_length=10_000, description="Class names in output order.")
    )
    path: str = Field(
        min_length=1,
        max_length=4096,
        pattern=r"^[^\x00]+$",
        description=(
            "Absolute server-side path of the TorchScript file; it must lie inside one of "
            "DATAOPS_API__INGEST_ROOTS."
        ),
    )
    input_spec: InputSpec | None = Field(
        default=None,
        description=(
            "Overrides the input spec stored in the file; required when it has none. At most "
            f"{MAX_INPUT_SIDE} pixels per side."
        ),
    )
    current: bool = Field(default=True, description="Make the new version the current one.")

    @model_validator(mode="after")
    def _bounded_input(self) -> RegisterModelRequest:
        # The dry run allocates an input of this size in the API process.
        if self.input_spec is not None and max(self.input_spec.size) > MAX_INPUT_SIDE:
            raise ValueError(f"input_spec.size is at most {MAX_INPUT_SIDE} pixels per side")
        return self


class RegisteredModel(ModelVersionOut):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{**MODEL_VERSION_EXAMPLE, "created": True}]}
    )

    created: bool = Field(description="False when these bytes already were this version.")
