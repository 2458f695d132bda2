from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class ImageSummary(BaseModel):
    """The `images list` row shape of the CLI contract."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    sha256: str
    uri: str
    status: str
    quarantine_reason: str | None


class ImageDetail(ImageSummary):
    blob_key: str | None
    width: int | None
    height: int | None
    format: str | None
    mode: str | None
    bytes: int
    captured_at: datetime | None
    camera: str | None
    source: str | None = None
    attributes: dict[str, Any]
    phash: str | None = None
    dhash: str | None = None
    dup_group_id: int | None = None
    locations: list[str] = []
    # Locations that held this image's bytes once and hold other bytes now.
    stale_locations: list[str] = []
    ingested_at: datetime


class IngestResult(BaseModel):
    job_id: str | None = None
    files: int = 0
    new: int = 0
    skipped: int = 0
    quarantined: int = 0
    unreadable: int = 0
    # Outside the ingest roots, a link planted after the paths were checked, or not a
    # regular file (FIFO, device, socket): never read.
    refused: int = 0
    locations_added: int = 0
    errors: list[str] = []


class IngestBody(BaseModel):
    """What a caller over HTTP may ask an ingest to read: server-side paths inside the
    configured ingest roots (see ``roots.checked_request``)."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [{"paths": ["/data/incoming/site-a"], "source": "site-a", "copy": False}]
        },
    )

    paths: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        min_length=1,
        max_length=1000,
        description=(
            "Folders, image files, globs or URLs on the server side; each must lie inside "
            "one of DATAOPS_API__INGEST_ROOTS."
        ),
    )
    source: str | None = Field(
        default=None, pattern=r"^[^\x00]{1,128}$", description="Name the source these came from."
    )
    copy_bytes: bool = Field(
        default=False, alias="copy", description="Copy the bytes into the blob store."
    )


class IngestRequest(IngestBody):
    """One ingest, as `dataops ingest`, the HTTP route and the ingest job run it.

    ``roots`` is set by the server (the HTTP route), never by a caller: with it, every file
    is checked against the roots again where it is read. The job's params are
    ``job_params()``.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    paths: list[str] = Field(min_length=1, description="Folders, files, globs, lists or URLs.")
    attributes_csv: str | None = Field(
        default=None, description="CSV with a path/uri/file column and one column per attribute."
    )
    roots: list[str] | None = Field(default=None, description="Read only inside these.")

    def job_params(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)
