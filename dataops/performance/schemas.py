"""The performance report's request (shared by the CLI, the API and the console) and its rows."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Group = Literal["annotator", "vendor"]
# Columns a report can be sorted by (the console's column links, the CLI's --sort).
SortKey = Literal[
    "name",
    "answers",
    "answers_per_day",
    "median_lead_time_s",
    "median_turnaround_h",
    "late_share",
    "gold_accuracy",
    "kappa",
    "first_pass_acceptance",
    "rework_rate",
]
SORT_KEYS: tuple[str, ...] = SortKey.__args__  # type: ignore[attr-defined]
DEFAULT_DAYS = 30
MAX_DAYS = 3660


class PerformanceRequest(BaseModel):
    """Which period [since, until) and grouping to report; the defaults are the last 30 days
    up to now, per annotator, by name."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "since": "2026-11-01T00:00:00Z",
                    "until": "2026-12-01T00:00:00Z",
                    "group": "vendor",
                }
            ]
        },
    )

    since: datetime | None = Field(
        default=None,
        description=(
            f"Start of the period (inclusive; a date or a time, UTC unless it names a zone); "
            f"default: {DEFAULT_DAYS} days before until."
        ),
    )
    until: datetime | None = Field(
        default=None, description="End of the period (exclusive); default: now."
    )
    group: Group = Field(default="annotator", description="One row per annotator or per vendor.")
    sort: SortKey = Field(default="name", description="The column the rows are ordered by.")
    descending: bool = Field(default=False, description="Largest first (missing values last).")


class PerformanceRow(BaseModel):
    """One annotator's or vendor's numbers over the period (definitions in
    ``dataops.performance.service``); a share or median is null when nothing counts towards it."""

    id: int | None = Field(description="Annotator id, or vendor id (null: no vendor).")
    name: str
    vendor: str | None = Field(default=None, description="The annotator's vendor.")
    answers: int
    answers_per_day: float
    lead_time_answers: int = Field(description="Answers with a Label Studio lead_time.")
    median_lead_time_s: float | None = Field(description="Median seconds spent per answer.")
    turnaround_answers: int = Field(description="Answers whose batch has a push time.")
    median_turnaround_h: float | None = Field(
        description="Median hours from the batch's push to the answer."
    )
    due_answers: int = Field(description="Answers whose batch has a due date.")
    late_answers: int = Field(description="Answers given after their batch's due date.")
    late_share: float | None
    gold_answers: int
    gold_correct: int
    gold_accuracy: float | None
    gold_ci_low: float | None = Field(description="95 % Wilson interval, lower bound.")
    gold_ci_high: float | None = Field(description="95 % Wilson interval, upper bound.")
    kappa_pairs: int = Field(description="Answer pairs with another annotator on one item.")
    kappa: float | None = Field(description="Cohen's kappa with the other annotators.")
    audited_answers: int = Field(description="Answers in batches that have an audit.")
    accepted_answers: int = Field(description="Of those, accepted by the audit.")
    first_pass_acceptance: float | None
    reworked_answers: int = Field(description="Audited answers whose item went to relabel.")
    rework_rate: float | None


class PerformanceReport(BaseModel):
    group: Group
    since: datetime
    until: datetime
    days: float = Field(description="Length of the period in days.")
    sort: SortKey
    descending: bool
    rows: list[PerformanceRow]
