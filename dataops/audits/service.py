"""Audits as records: find an open batch to audit, read audits and their reports, and measure
agreement on a ratings file.

Running an audit is ``dataops.audits.run``; its job handler is ``dataops.audits.jobs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.audits.errors import (
    AuditInputError,
    AuditNotFound,
    BatchClosed,
    RatingsFileError,
    literal,
)
from dataops.audits.models import Audit
from dataops.audits.schemas import AgreementRequest, AuditOut
from dataops.selection.errors import BatchNotFound
from dataops.selection.models import OPEN_STATUSES, Batch

if TYPE_CHECKING:
    from dataops.storage import BlobStore


def check_auditable(session: Session, batch_id: int, *, lock: bool = False) -> Batch:
    """The batch, if it is still open: a closed batch already has its decision."""
    batch = session.get(Batch, batch_id, with_for_update=lock)
    if batch is None:
        raise BatchNotFound(f"no batch {batch_id} (see `dataops batches list`)")
    if batch.status not in OPEN_STATUSES:
        last = session.scalar(
            select(Audit.id).where(Audit.batch_id == batch.id).order_by(Audit.id.desc())
        )
        by = f" by audit {last} (`dataops audit show {last}`)" if last else ""
        raise BatchClosed(
            f"batch {batch.id} is already {batch.status}{by}; it cannot be re-audited"
        )
    return batch


def get_audit(session: Session, audit_id: int) -> Audit:
    audit = session.get(Audit, audit_id)
    if audit is None:
        raise AuditNotFound(f"no audit {audit_id} (see `dataops audit list`)")
    return audit


def list_audits(
    session: Session,
    *,
    batch_id: int | None = None,
    decision: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Audit]:
    """Audits newest first (one page: ``limit`` rows after ``offset``)."""
    stmt = select(Audit).order_by(Audit.id.desc()).limit(limit).offset(offset)
    if batch_id is not None:
        stmt = stmt.where(Audit.batch_id == batch_id)
    if decision is not None:
        stmt = stmt.where(Audit.decision == decision)
    return list(session.scalars(stmt))


def audit_out(audit: Audit) -> AuditOut:
    gate = audit.metrics.get("gate") or {}
    counts = audit.metrics.get("counts") or {}
    return AuditOut(
        id=audit.id,
        batch_id=audit.batch_id,
        decision=audit.decision,
        gate=audit.gate,
        pass_rate=audit.pass_rate,
        n_items=int(gate.get("n_items", 0)),
        n_passed=int(gate.get("n_passed", 0)),
        n_disputed=int(counts.get("disputed", 0)),
        n_relabeled=int(counts.get("items_relabeled", 0)),
        n_released=int(counts.get("items_released", 0)),
        relabel_batch_id=audit.relabel_batch_id,
        report_json_key=audit.report_json_key,
        report_html_key=audit.report_html_key,
        created_by=audit.created_by,
        created_at=audit.created_at,
    )


def report_path(key: str | None, *, store: BlobStore | None = None) -> str | None:
    """The file a report key names, when the blob store is a local folder and it is there:
    something a person can open, unlike the key itself."""
    from dataops.storage import get_store

    if key is None:
        return None
    store = store or get_store()
    path = store.local_path(key)
    return str(Path(path).absolute()) if path is not None and Path(path).is_file() else None


def export_report(
    session: Session, audit_id: int, out_dir: str | Path, *, store: BlobStore | None = None
) -> list[Path]:
    """Copy an audit's report files out of the blob store as audit-<id>.html / .json."""
    from dataops.storage import get_store

    audit = get_audit(session, audit_id)
    store = store or get_store()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, suffix in ((audit.report_html_key, "html"), (audit.report_json_key, "json")):
        if key is None:
            continue
        path = out / f"audit-{audit.id}.{suffix}"
        path.write_bytes(store.get(key))
        written.append(path)
    return written


def agreement_from_csv(path: str | Path, request: AgreementRequest) -> dict[str, Any]:
    """The `dataops audit agreement` document for a long-form ratings CSV.

    Interval data need numeric labels; ordinal labels are numbers, or text ordered by
    ``categories`` (their natural sort, "high" < "low" < "mid", is wrong). Weighted kappa
    needs ordered categories for the same reason.
    """
    from dataops.audits.agreement import agreement_summary
    from dataops.audits.ratings import read_ratings_csv

    level, categories = request.level, request.categories
    if categories is not None and level == "interval":
        raise AuditInputError(
            "{categories} orders text labels; interval labels are numbers",
            fields=("categories",),
        )
    if request.weights is not None and level == "nominal" and categories is None:
        raise AuditInputError(
            "{weights} needs ordered categories: give their order with {categories} "
            "(e.g. low,mid,high) or pass {level} ordinal for numeric labels",
            fields=("weights", "categories", "level"),
        )
    numeric = level == "interval" or (level == "ordinal" and categories is None)
    try:
        ratings = read_ratings_csv(path, numeric=numeric, categories=categories)
    except UnicodeDecodeError:
        raise RatingsFileError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise RatingsFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        if level == "ordinal" and categories is None and "is not a number" in str(exc):
            raise RatingsFileError(
                literal(str(exc)) + " (ordinal text labels need {categories} in their order, "
                "e.g. low,mid,high)",
                fields=("categories",),
            ) from None
        raise RatingsFileError(str(exc)) from None
    return agreement_summary(
        ratings,
        level=level,
        weights=request.weights,
        n_resamples=request.resamples,
        seed=request.seed,
    )
