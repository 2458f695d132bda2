"""Shapes of the overview: what the console's first page and `GET /v1/overview` show."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TaskLabeled(BaseModel):
    task: str = Field(description="The labeling task (a guideline's name).")
    images: int = Field(description="Images holding a label that counts for the task.")


class CatalogCounts(BaseModel):
    images: int = Field(description="Every image in the catalog.")
    quarantined: int = Field(description="Images set aside as unreadable or unsafe.")
    duplicate_groups: int = Field(description="Groups of two or more images of the same picture.")
    labeled: list[TaskLabeled] = Field(description="Labeled images per task.")
    counted_at: datetime = Field(description="When these were counted (kept up to a minute).")


class ActiveJob(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    status: str
    progress_done: int
    progress_total: int
    created_by: str | None
    created_at: datetime
    started_at: datetime | None


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    details: dict[str, Any]


class Overview(BaseModel):
    """The catalog at a glance."""

    catalog: CatalogCounts
    jobs: list[ActiveJob] = Field(description="Pending and running jobs, newest first.")
    events: list[EventOut] = Field(description="The latest events, newest first.")


class ActiveJobs(BaseModel):
    jobs: list[ActiveJob]
