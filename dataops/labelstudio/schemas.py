"""Typed requests for the sync job (push a batch, pull a queue) and the webhook's answer.

The CLI, the HTTP routes and the job handler all build these, so a default (100 tasks per
page) and a bound (at most 1,000) are written once, here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from dataops.errors import DataopsError

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

PageSize = Annotated[
    int,
    Field(ge=1, le=MAX_PAGE_SIZE, description="Tasks per Label Studio request and commit."),
]


class PushRequest(BaseModel):
    """Create a batch's tasks in its queue's Label Studio project."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["push"] = "push"
    batch_id: int = Field(ge=1, description="The batch id.")
    page_size: PageSize = DEFAULT_PAGE_SIZE


class PullRequest(BaseModel):
    """Store the annotations of a queue's project (a batch names its queue)."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["pull"] = "pull"
    batch_id: int | None = Field(default=None, ge=1, description="Pull this batch's queue.")
    queue_id: int | None = Field(default=None, ge=1, description="Pull this queue.")
    full: bool = Field(
        default=False, description="Read every task, not only changed ones, and record deletions."
    )
    page_size: PageSize = DEFAULT_PAGE_SIZE

    @model_validator(mode="after")
    def _one_target(self) -> PullRequest:
        if (self.batch_id is None) == (self.queue_id is None):
            raise ValueError("a pull names either a batch or a queue")
        return self


SyncRequest = Annotated[PushRequest | PullRequest, Field(discriminator="action")]
_SYNC = TypeAdapter[PushRequest | PullRequest](SyncRequest)


def sync_request(params: dict[str, Any]) -> PushRequest | PullRequest:
    """A sync job's params as its typed request; bad values name the field at fault."""
    try:
        return _SYNC.validate_python(params)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = [str(part) for part in error["loc"] if part not in ("push", "pull")]
        if error["type"] == "union_tag_invalid" or not where:
            if error["type"] == "value_error":
                raise DataopsError(error["msg"].removeprefix("Value error, ")) from None
            raise DataopsError(
                "a sync job needs action 'push' with batch_id, or 'pull' with batch_id or queue_id"
            ) from None
        name = where[0]
        if name == "page_size":
            given = _literal(repr(error.get("input")))
            raise DataopsError(
                f"{{page_size}} must be between 1 and {MAX_PAGE_SIZE}, got {given}",
                fields=("page_size",),
            ) from None
        raise DataopsError(f"{{{name}}}: {_literal(error['msg'])}", fields=(name,)) from None


def _literal(text: str) -> str:
    """Text safe inside an error template (its braces are not field placeholders)."""
    return text.replace("{", "{{").replace("}", "}}")


class WebhookResult(BaseModel):
    action: str = Field(examples=["ANNOTATION_CREATED"])
    queue_id: int | None = Field(description="The queue whose project sent this, if any.")
    job_id: str | None = Field(description="The pull job that will pick the change up.")
    deleted: int = Field(description="Deletion records appended for ANNOTATIONS_DELETED.")
