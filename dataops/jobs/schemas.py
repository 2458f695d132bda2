from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["pending", "running", "succeeded", "failed"]


class JobListRequest(BaseModel):
    """Which jobs to list (newest first): the CLI's options and the HTTP query."""

    status: JobStatus | None = Field(default=None, description="Only jobs in this state.")
    kind: str | None = Field(
        default=None,
        pattern=r"^[a-z_]{1,32}$",
        description="Only jobs of this kind, e.g. `ingest`.",
    )
    limit: int = Field(default=50, ge=1, le=500, description="At most this many jobs.")
    offset: int = Field(default=0, ge=0, description="Skip this many (newest) jobs first.")


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    status: str
    params: dict[str, Any]
    progress_done: int
    progress_total: int
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobAccepted(BaseModel):
    """The answer to every request that starts long work (HTTP 202)."""

    job_id: str = Field(examples=["9b1f0c3e5d7a4b2c8e6f1a0d3c5b7e9f"])
    status_url: str = Field(
        description="Poll this for progress and the result.",
        examples=["/v1/jobs/9b1f0c3e5d7a4b2c8e6f1a0d3c5b7e9f"],
    )


class JobList(BaseModel):
    jobs: list[JobOut]


class JobGroupRequest(BaseModel):
    """Which job groups to show: the CLI's `jobs list --grouped` options and the HTTP query."""

    kind: str | None = Field(
        default=None, pattern=r"^[a-z_]{1,32}$", description="Only jobs of this kind."
    )
    since: datetime | None = Field(
        default=None, description="Only jobs created at or after this time (ISO 8601)."
    )
    limit: int = Field(default=50, ge=1, le=500, description="At most this many groups.")


class JobGroup(BaseModel):
    """Jobs of one kind (sync jobs: of one queue), and what they did together."""

    kind: str
    queue_id: int | None = Field(description="Sync jobs: the queue they push to or pull from.")
    queue: str | None = Field(description="That queue's name.")
    jobs: int = Field(description="Jobs in the group.")
    running: int
    failed: int
    last_job_id: str | None = Field(description="The group's newest job.")
    last_status: str | None = Field(description="Its status.")
    last_error: str | None = Field(description="Its error, if it failed.")
    last_created_at: datetime
    last_finished_at: datetime | None = Field(description="When a job of the group last finished.")
    totals: dict[str, int | float] = Field(
        description="The numbers the succeeded jobs reported, summed (e.g. `created` tasks)."
    )


class JobGroupList(BaseModel):
    groups: list[JobGroup]
