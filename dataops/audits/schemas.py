"""Shapes the CLI and API print for audits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


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
