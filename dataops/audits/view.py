"""One audit laid out for reading (the console's audit page): its decision against the gate,
each metric beside its explanation, the tables, what happened to the items, and a page of
disputed items by file name.

Everything here was computed when the audit ran (``dataops.audits.run``) and is read from the
audit's stored metrics; the JSON twins are ``GET /v1/audits/{id}`` and
``GET /v1/audits/{id}/disputed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from dataops.audits import service
from dataops.audits.disputed import DisputedPage, disputed_page
from dataops.audits.explain import EXPLANATIONS, LABELS, MetricRow, summary_rows
from dataops.audits.schemas import AuditOut
from dataops.labeling.models import Queue
from dataops.selection.models import Batch

# Table columns a reader may not know, in the order the page explains them.
ANNOTATOR_COLUMNS = ("agreement", "mean_kappa", "gold_accuracy")
CLASS_COLUMNS = ("specific_agreement", "alpha")
OUTCOME_WORDS = {
    "accepted": "accepted: answers kept as ground truth, outvoted answers rejected",
    "relabel": "sent to the relabel batch (their answers released)",
    "released": "released to the pool (answers kept, not ground truth)",
    "unanswered": "unanswered, back to the pool",
}


@dataclass(frozen=True)
class Explained:
    key: str
    label: str
    explanation: str


@dataclass
class AuditView:
    audit: AuditOut
    gate: dict[str, Any]
    metrics: list[MetricRow]
    n_items: int | None
    n_annotators: int | None
    annotators: list[dict[str, Any]]
    classes: list[dict[str, Any]]
    vendors: list[dict[str, Any]]
    outcome: dict[str, Any]
    outcome_rows: list[tuple[str, int]]
    disputed: DisputedPage
    batch_purpose: str | None = None
    queue_id: int | None = None
    queue_name: str | None = None
    gate_explained: list[Explained] = field(default_factory=list)
    columns_explained: list[Explained] = field(default_factory=list)


def _explained(keys: tuple[str, ...]) -> list[Explained]:
    return [Explained(k, LABELS[k], EXPLANATIONS[k]) for k in keys]


def audit_view(
    session: Session, audit_id: int, *, disputed_limit: int = 24, disputed_offset: int = 0
) -> AuditView:
    """The audit, or ``AuditNotFound``; one page of its disputed items."""
    audit = service.get_audit(session, audit_id)
    metrics = audit.metrics
    summary = metrics.get("summary") or {}
    outcome = metrics.get("outcome") or {}
    batch = session.get(Batch, audit.batch_id) if audit.batch_id is not None else None
    queue = (
        session.get(Queue, batch.queue_id)
        if batch is not None and batch.queue_id is not None
        else None
    )
    return AuditView(
        audit=service.audit_out(audit),
        gate=metrics.get("gate") or {},
        metrics=summary_rows(summary),
        n_items=summary.get("n_items"),
        n_annotators=summary.get("n_annotators"),
        annotators=list(metrics.get("annotators") or []),
        classes=list(metrics.get("classes") or []),
        vendors=list(metrics.get("vendors") or []),
        outcome=outcome,
        outcome_rows=[
            (OUTCOME_WORDS.get(name, name), int(count))
            for name, count in (outcome.get("items") or {}).items()
        ],
        disputed=disputed_page(
            session, audit, limit=disputed_limit, offset=disputed_offset, paths=True
        ),
        batch_purpose=batch.purpose if batch is not None else None,
        queue_id=queue.id if queue is not None else None,
        queue_name=queue.name if queue is not None else None,
        gate_explained=_explained(("pass_rate", "gate")),
        columns_explained=_explained(ANNOTATOR_COLUMNS + CLASS_COLUMNS),
    )
