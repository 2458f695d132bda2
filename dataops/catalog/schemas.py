from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


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
