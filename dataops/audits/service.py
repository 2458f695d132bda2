"""Audit runs on labeled batches: agreement, gold checks and the acceptance gate.

Answers. Per batch item and annotator, the live label version of the batch for one labeling
task (the head of its chain, see ``labeling.service.live_versions``) when its status is
``submitted`` or ``accepted``. The batch item's gold answer (``gold_label_version_id``) and a
live ``adjudicated`` version are references, not answers.

Two answers *match* when their classes are equal (classification) or, for detection, when
every box of one is matched one-to-one to a box of the same class in the other at
IoU >= 0.5 (Hungarian matching, as in ``dataops.audits.boxes``).

Items.
- *overlap item*: answers from at least two annotators. Every agreement statistic (percent
  agreement, Cohen's kappa for two annotators, Fleiss' kappa, Krippendorff's alpha, their
  bootstrap intervals, the per annotator / class / vendor tables; box agreement for
  detection) is computed on exactly the overlap items' answers.
- *gold item*: ``is_gold`` with a gold answer and at least one annotator answer. Gold
  accuracy is computed per annotator on these.
- *audited item*: an overlap item, a gold item, or an item with an adjudicated version and
  at least one answer; in a relabel batch, every item with an answer.

Each item's accepted label: the gold answer on gold items, the adjudicated answer where
there is one, else the majority answer (the largest group of matching answers); a single
answer is taken as it is. An overlap item whose largest groups tie is *disputed*, and so is
a gold item where any answer misses the gold answer (the question or the gold answer may be
ambiguous).

**Audit pass rate** = passed audited items / audited items. An audited item passes when
every annotator answer matches its reference: the gold or adjudicated answer where there is
one, otherwise the majority answer, so an overlap item passes only when it is unanimous (a
tie never passes). Relabel batches are judged by their "k of n" rule instead (see
``dataops.audits.decide``). The batch is accepted when pass rate >= gate, rejected otherwise.

What the decision does with each item (accept its answers, relabel it, release it) follows
``dataops.audits.decide.outcome`` and the queue's policy (``dataops.audits.policy``); the
policy and the relabel rule in force are recorded in the audit and shown in its report.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

import dataops.models  # noqa: F401  (every table: flushing a Batch resolves all its foreign keys)
from dataops.audits import policy as policies
from dataops.audits import relabel as rounds
from dataops.audits import tables
from dataops.audits.decide import (
    ACCEPTED_OUTCOME,
    IOU_THRESHOLD,
    RELABEL,
    RELEASED_OUTCOME,
    Decision,
    Item,
    Payload,
    decide,
    describe,
    outcome,
    same_boxes,
    same_class,
)
from dataops.audits.errors import (
    AuditInputError,
    AuditNotFound,
    BatchClosed,
    BatchNotFound,
    NothingToAudit,
    RatingsFileError,
)
from dataops.audits.models import Audit
from dataops.audits.schemas import AuditOut
from dataops.catalog.models import Image
from dataops.db import is_sqlite, utcnow
from dataops.events import service as events
from dataops.labeling import service as labeling
from dataops.labeling.models import (
    ACCEPTED,
    ADJUDICATED,
    REJECTED,
    RELEASED,
    SUBMITTED,
    Annotator,
    LabelVersion,
    Queue,
    Vendor,
)
from dataops.selection.models import OPEN_STATUSES, Batch, BatchItem, ImageClaim

if TYPE_CHECKING:
    from dataops.audits.metrics import KappaWeights, Level
    from dataops.audits.report import (
        DisputedItem,
    )
    from dataops.jobs.runner import JobContext
    from dataops.storage import BlobStore

DEFAULT_GATE = 0.95
GOLD_THRESHOLD = 0.9
DEFAULT_RESAMPLES = 1000
THUMBNAIL_EDGE = 240
# Thumbnails are embedded in the HTML; past this many the file stops being easy to open.
MAX_THUMBNAILS = 200
NO_VENDOR = "(no vendor)"


# --- loading ------------------------------------------------------------------------------


@dataclass
class _Loaded:
    items: list[Item]
    kind: str
    task: str
    vendor_of: dict[str, str]
    unattributed: int


def _get_batch(session: Session, batch_id: int, *, lock: bool = False) -> Batch:
    batch = session.get(Batch, batch_id, with_for_update=lock)
    if batch is None:
        raise BatchNotFound(f"no batch {batch_id} (see `dataops batches list`)")
    return batch


def check_auditable(session: Session, batch_id: int, *, lock: bool = False) -> Batch:
    """The batch, if it is still open: a closed batch already has its decision."""
    batch = _get_batch(session, batch_id, lock=lock)
    if batch.status not in OPEN_STATUSES:
        last = session.scalar(
            select(Audit.id).where(Audit.batch_id == batch.id).order_by(Audit.id.desc())
        )
        by = f" by audit {last} (`dataops audit show {last}`)" if last else ""
        raise BatchClosed(
            f"batch {batch.id} is already {batch.status}{by}; it cannot be re-audited"
        )
    return batch


def _payload_kind(payload: Payload) -> str:
    return "detection" if "boxes" in payload else "classification"


def _load(session: Session, batch: Batch, task: str | None) -> _Loaded:
    rows = session.execute(
        select(BatchItem, Image)
        .join(Image, Image.id == BatchItem.image_id)
        .where(BatchItem.batch_id == batch.id)
        .order_by(BatchItem.position, BatchItem.id)
    ).all()
    items = {bi.image_id: Item(bi, image) for bi, image in rows}
    gold_ids = {
        bi.gold_label_version_id for bi, _ in rows if bi.is_gold and bi.gold_label_version_id
    }
    gold = {
        v.id: v
        for v in session.scalars(select(LabelVersion).where(LabelVersion.id.in_(sorted(gold_ids))))
    }
    for bi, _ in rows:
        if bi.is_gold and bi.gold_label_version_id in gold:
            items[bi.image_id].gold = gold[bi.gold_label_version_id]

    tasks = sorted(
        session.scalars(
            select(LabelVersion.task).where(LabelVersion.batch_id == batch.id).distinct()
        )
    )
    if task is None:
        if len(tasks) > 1:
            raise AuditInputError(
                f"batch {batch.id} has labels for several tasks ({', '.join(tasks)}); "
                "name one with --task"
            )
        task = tasks[0] if tasks else "default"
    live = [
        v
        for v in labeling.live_versions(session, batch_id=batch.id, task=task)
        if v.id not in gold
        and v.image_id in items
        and v.status in (SUBMITTED, ACCEPTED, ADJUDICATED)
    ]
    annotator_ids = {v.annotator_id for v in live if v.annotator_id is not None}
    names: dict[int, str] = {}
    vendor_of: dict[str, str] = {}
    for annotator, vendor_name in session.execute(
        select(Annotator, Vendor.name)
        .outerjoin(Vendor, Vendor.id == Annotator.vendor_id)
        .where(Annotator.id.in_(sorted(annotator_ids)))
    ):
        names[annotator.id] = annotator.name
        vendor_of[annotator.name] = vendor_name or NO_VENDOR
    unattributed = 0
    for v in live:  # ascending ids: a newer adjudication replaces an older one
        item = items[v.image_id]
        if v.status == ADJUDICATED:
            item.adjudicated = v
        elif v.annotator_id is None:
            unattributed += 1
        else:
            item.answers[names[v.annotator_id]] = v
    for item in items.values():
        item.answers = dict(sorted(item.answers.items()))

    kinds = {
        _payload_kind(v.payload)
        for item in items.values()
        for v in [*item.answers.values(), *filter(None, (item.gold, item.adjudicated))]
    }
    if len(kinds) > 1:
        raise AuditInputError(
            f"batch {batch.id} mixes classification and detection labels for task {task!r}; "
            "they cannot be compared"
        )
    kind = kinds.pop() if kinds else "classification"
    return _Loaded(list(items.values()), kind, task, vendor_of, unattributed)


# --- state changes --------------------------------------------------------------------------


def _status_changes(
    items: Sequence[Item], decisions: Sequence[Decision], outcomes: Sequence[str]
) -> dict[str, list[int]]:
    """Label version ids per new status, for the versions whose status changes."""
    changes: dict[str, list[int]] = {ACCEPTED: [], REJECTED: [], RELEASED: []}
    for item, d, result in zip(items, decisions, outcomes, strict=True):
        if result == ACCEPTED_OUTCOME:
            changes[ACCEPTED] += [v.id for v in d.winners if v.status != ACCEPTED]
            changes[REJECTED] += [v.id for v in d.losers if v.status != REJECTED]
        elif result in (RELABEL, RELEASED_OUTCOME):
            # An answer accepted before the audit (by hand) keeps its verdict.
            changes[RELEASED] += [v.id for v in item.answers.values() if v.status == SUBMITTED]
    return changes


def _reserve_audit_id(session: Session) -> int:
    """The new audit's id, known before the insert so its report files can be named by it.

    Immutable rows cannot be updated with their report keys afterwards. On SQLite the caller
    has already written in this transaction, so it holds the write lock and max + 1 is safe.
    """
    if is_sqlite(session):
        return int(session.scalar(select(func.max(Audit.id))) or 0) + 1
    return int(session.scalar(text("SELECT nextval(pg_get_serial_sequence('audits', 'id'))")))


# --- reports --------------------------------------------------------------------------------


def _image_bytes(image: Image, store: BlobStore) -> bytes:
    """Only bytes that hash to the image's sha256 (``ImageChanged`` otherwise)."""
    from dataops.catalog.verify import read_verified

    return read_verified(image, store=store)


def _thumbnail(image: Image, store: BlobStore) -> bytes | None:
    """A small JPEG for the report; an unreadable original just shows no picture."""
    from PIL import Image as PILImage

    from dataops.errors import DataopsError

    try:
        with PILImage.open(io.BytesIO(_image_bytes(image, store))) as img:
            img.draft("RGB", (THUMBNAIL_EDGE, THUMBNAIL_EDGE))
            small = img.convert("RGB")
            small.thumbnail((THUMBNAIL_EDGE, THUMBNAIL_EDGE))
            out = io.BytesIO()
            small.save(out, format="JPEG", quality=80)
            return out.getvalue()
    except (OSError, DataopsError, PILImage.DecompressionBombError, ValueError):
        return None


def _disputed_entry(item: Item, decision: Decision) -> DisputedItem:
    from dataops.audits.report import DisputedItem

    entry = DisputedItem(
        item=item.image.sha256,
        labels={name: describe(v.payload) for name, v in item.answers.items()},
        reason=decision.disputed or "",
    )
    if decision.disputed == "tie":
        entry["majority"] = None
    return entry


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _to_json(document: dict[str, Any]) -> str:
    # allow_nan=False: an undefined statistic must be null, never NaN (invalid JSON and JSONB).
    return json.dumps(document, default=_json_default, allow_nan=False, ensure_ascii=False)


# --- the audit ------------------------------------------------------------------------------


def run_audit(
    session: Session,
    batch_id: int,
    *,
    gate: float = DEFAULT_GATE,
    actor: str | None = None,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    gold_threshold: float = GOLD_THRESHOLD,
    task: str | None = None,
    store: BlobStore | None = None,
) -> Audit:
    """Audit an open batch, decide it against the gate and record an immutable Audit.

    See the module docstring for which answers count and how the pass rate is defined. Each
    answered item then gets its outcome (``dataops.audits.decide``): accepted (the winning
    label versions become ``accepted``, the outvoted ones ``rejected``), relabel (its answers
    become ``released`` and it joins the relabel batch) or released (its answers become
    ``released``). Either way the batch closes and its image claims are released. Reports go
    to ``audits/<id>/report.json`` and ``audits/<id>/report.html`` in the blob store.
    """
    from dataops.audits.report import OUTCOMES, AuditReport, GateResult, OutcomeReport, render_html
    from dataops.storage import get_store

    if not 0 <= gate <= 1:
        raise AuditInputError(f"the gate is a share between 0 and 1, got {gate}")
    if not 0 <= gold_threshold <= 1:
        raise AuditInputError(
            f"the gold threshold is a share between 0 and 1, got {gold_threshold}"
        )
    if resamples < 0:
        raise AuditInputError(f"resamples must be 0 or more, got {resamples}")
    store = store or get_store()
    batch = check_auditable(session, batch_id, lock=True)
    loaded = _load(session, batch, task)
    items = loaded.items
    queue = session.get(Queue, batch.queue_id) if batch.queue_id is not None else None
    policy = policies.of_queue(queue)
    quorum = rounds.quorum_of(batch, policy)
    same = same_boxes if loaded.kind == "detection" else same_class
    decisions = [decide(item, same, quorum=quorum) for item in items]
    audited = [d for d in decisions if d.audited]
    if not audited:
        raise NothingToAudit(
            f"batch {batch.id} has no item answered by two annotators and no answered gold "
            "item: there is no pass rate to compare with the gate"
        )
    n_passed = sum(bool(d.passed) for d in audited)
    pass_rate = n_passed / len(audited)
    accepted = pass_rate >= gate
    decision = "accepted" if accepted else "rejected"

    if loaded.kind == "detection":
        agreement = tables.detection_agreement(items)
    else:
        agreement = tables.classification_agreement(
            items, decisions, resamples=resamples, seed=seed
        )
    gold = tables.gold_scores(items, same, gold_threshold)
    annotators = tables.annotator_rows(items, agreement, gold, loaded.vendor_of)
    vendors = tables.vendor_rows(items, decisions, annotators, gold)

    # State changes: label statuses, the batch, its claims, the relabel batch.
    relabel_allowed = rounds.can_relabel(batch, policy)
    outcomes: list[str] = []
    unresolved: list[tuple[Item, Decision]] = []
    for item, d in zip(items, decisions, strict=True):
        result = outcome(item, d, accepted=accepted, policy=policy)
        if result == RELABEL and not relabel_allowed:
            result = RELEASED_OUTCOME
            unresolved.append((item, d))
        outcomes.append(result)
    changes = _status_changes(items, decisions, outcomes)
    reason = f"audit of batch {batch.id}"
    for status, ids in changes.items():
        for version_id in ids:
            labeling.set_status(session, version_id, status, actor=actor, reason=reason)
    batch.status = decision
    batch.closed_at = utcnow()
    released = session.execute(delete(ImageClaim).where(ImageClaim.batch_id == batch.id))
    session.flush()
    disputed = [(item, d) for item, d in zip(items, decisions, strict=True) if d.disputed]
    to_relabel = [
        (item, d)
        for item, d, result in zip(items, decisions, outcomes, strict=True)
        if result == RELABEL
    ]
    relabel = rounds.create_relabel_batch(session, batch, to_relabel, policy, actor)
    outcome_counts = Counter(outcomes)
    outcome_report = OutcomeReport(
        policy=policy.as_dict(),
        rule=(
            f"passes with {quorum} matching answers (relabel round {rounds.round_of(batch)})"
            if quorum is not None
            else "passes when every answer matches (unanimous, or the gold answer)"
        ),
        relabel_rule=policy.rule(),
        round=rounds.round_of(batch),
        items={name: outcome_counts[name] for name in OUTCOMES},
        relabel_batch_id=relabel.id if relabel else None,
        unresolved=[item.image.sha256 for item, _ in unresolved],
    )

    audit_id = _reserve_audit_id(session)
    queue_name = queue.name if queue is not None else None
    gate_result = GateResult(
        gate=gate,
        pass_rate=pass_rate,
        n_items=len(audited),
        n_passed=n_passed,
        accepted=accepted,
    )
    report = AuditReport(
        title=f"Audit {audit_id} of batch {batch.id}",
        batch=f"{batch.id} ({batch.purpose}" + (f", queue {queue_name})" if queue_name else ")"),
        generated_at=utcnow().isoformat(timespec="seconds"),
        summary=agreement.summary,
        gate=gate_result,
        annotators=annotators,
        classes=agreement.classes,
        vendors=vendors,
        disputed=[_disputed_entry(item, d) for item, d in disputed],
        outcome=outcome_report,
    )
    if agreement.pairwise is not None:
        report["pairwise"] = agreement.pairwise
    if agreement.confusion is not None:
        report["confusion"] = agreement.confusion
    if "boxes" in agreement.extra:
        report["boxes"] = agreement.extra["boxes"]
    roles = Counter(d.role for d in decisions)
    metrics: dict[str, Any] = {
        **report,
        **{k: v for k, v in agreement.extra.items() if k != "boxes"},
        "audit_id": audit_id,
        "batch_id": batch.id,
        "decision": decision,
        "kind": loaded.kind,
        "task": loaded.task,
        "relabel_batch_id": relabel.id if relabel else None,
        "parameters": {
            "gate": gate,
            "seed": seed,
            "resamples": resamples,
            "gold_threshold": gold_threshold,
            "iou_threshold": IOU_THRESHOLD,
            "quorum": quorum,
            "policy": policy.as_dict(),
        },
        "gold": gold,
        "counts": {
            "items": len(items),
            "audited": len(audited),
            "passed": n_passed,
            "disputed": len(disputed),
            "overlap": sum(len(item.answers) >= 2 for item in items),
            "gold": roles["gold"],
            "adjudicated": roles["adjudicated"],
            "single": roles["single"],
            "relabel": roles["relabel"],
            "unlabeled": roles["unlabeled"],
            "unattributed_labels": loaded.unattributed,
            "labels_accepted": len(changes[ACCEPTED]),
            "labels_rejected": len(changes[REJECTED]),
            "labels_released": len(changes[RELEASED]),
            "items_accepted": outcome_counts[ACCEPTED_OUTCOME],
            "items_relabeled": outcome_counts[RELABEL],
            "items_released": outcome_counts[RELEASED_OUTCOME],
        },
    }
    metrics = json.loads(_to_json(metrics))
    document = {
        **metrics,
        "items": [
            {
                "image_id": item.image.id,
                "sha256": item.image.sha256,
                "role": d.role,
                "passed": d.passed,
                "disputed": d.disputed,
                "label": d.label,
                "outcome": result,
                "label_version_ids": [v.id for v in d.winners],
                "answers": {name: v.payload for name, v in item.answers.items()},
            }
            for item, d, result in zip(items, decisions, outcomes, strict=True)
        ],
    }
    thumbnails = {}
    for item, _ in disputed[:MAX_THUMBNAILS]:
        picture = _thumbnail(item.image, store)
        if picture is not None:
            thumbnails[item.image.sha256] = picture
    prefix = f"audits/{audit_id}"
    json_key = store.put_named(f"{prefix}/report.json", _to_json(document).encode())
    html_key = store.put_named(
        f"{prefix}/report.html", render_html(report, thumbnails).encode("utf-8")
    )
    audit = Audit(
        id=audit_id,
        batch_id=batch.id,
        gate=gate,
        pass_rate=pass_rate,
        decision=decision,
        metrics=metrics,
        report_json_key=json_key,
        report_html_key=html_key,
        relabel_batch_id=relabel.id if relabel else None,
        created_by=actor,
    )
    session.add(audit)
    session.flush()

    events.record(
        session,
        "audit.created",
        "audit",
        audit.id,
        actor=actor,
        details={
            "batch_id": batch.id,
            "decision": decision,
            "pass_rate": pass_rate,
            "gate": gate,
            "relabel_batch_id": audit.relabel_batch_id,
        },
    )
    events.record(
        session,
        f"batch.{decision}",
        "batch",
        batch.id,
        actor=actor,
        details={
            "audit_id": audit.id,
            "pass_rate": pass_rate,
            "gate": gate,
            "claims_released": released.rowcount,  # type: ignore[attr-defined]
        },
    )
    if relabel is not None:
        events.record(
            session,
            "batch.created",
            "batch",
            relabel.id,
            actor=actor,
            details={
                "purpose": "relabel",
                "parent_batch_id": batch.id,
                "audit_id": audit.id,
                "items": relabel.size,
            },
        )
    return audit


def run_audit_job(ctx: JobContext) -> dict[str, Any]:
    """Job handler: params are {batch_id, gate, seed, resamples, gold_threshold, task}."""
    params = ctx.params
    ctx.progress(0, 1, "audit", force=True)
    with ctx.session() as session:
        audit = run_audit(
            session,
            int(params["batch_id"]),
            gate=float(params.get("gate", DEFAULT_GATE)),
            actor=ctx.actor,
            seed=int(params.get("seed", 0)),
            resamples=int(params.get("resamples", DEFAULT_RESAMPLES)),
            gold_threshold=float(params.get("gold_threshold", GOLD_THRESHOLD)),
            task=params.get("task"),
        )
        # The job finishes with the audit: a retry answers with this audit, never a second one.
        result = ctx.finish(session, audit_out(audit).model_dump(mode="json"))
    ctx.progress(1, 1, "audit")
    return result


# --- reading --------------------------------------------------------------------------------


def get_audit(session: Session, audit_id: int) -> Audit:
    audit = session.get(Audit, audit_id)
    if audit is None:
        raise AuditNotFound(f"no audit {audit_id} (see `dataops audit list`)")
    return audit


def list_audits(session: Session, *, batch_id: int | None = None, limit: int = 100) -> list[Audit]:
    stmt = select(Audit).order_by(Audit.id.desc()).limit(limit)
    if batch_id is not None:
        stmt = stmt.where(Audit.batch_id == batch_id)
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


def agreement_from_csv(
    path: str | Path,
    *,
    level: str = "nominal",
    resamples: int = 0,
    seed: int = 0,
    categories: Sequence[str] | None = None,
    weights: str | None = None,
) -> dict[str, Any]:
    """The `dataops audit agreement` document for a long-form ratings CSV.

    Interval data need numeric labels; ordinal labels are numbers, or text ordered by
    ``categories`` (their natural sort, "high" < "low" < "mid", is wrong). Weighted kappa
    needs ordered categories for the same reason.
    """
    from dataops.audits.metrics import agreement_summary, read_ratings_csv

    if level not in ("nominal", "ordinal", "interval"):
        raise AuditInputError(f"--level must be nominal, ordinal or interval, got {level!r}")
    if resamples < 0:
        raise AuditInputError(f"--bootstrap must be 0 or more, got {resamples}")
    if categories is not None and level == "interval":
        raise AuditInputError("--categories orders text labels; interval labels are numbers")
    if weights is not None and weights not in ("linear", "quadratic"):
        raise AuditInputError(f"--weights must be linear or quadratic, got {weights!r}")
    if weights is not None and level == "nominal" and categories is None:
        raise AuditInputError(
            "--weights needs ordered categories: give their order with --categories "
            "(e.g. low,mid,high) or pass --level ordinal for numeric labels"
        )
    numeric = level == "interval" or (level == "ordinal" and categories is None)
    try:
        ratings = read_ratings_csv(path, numeric=numeric, categories=categories)
    except UnicodeDecodeError:
        raise RatingsFileError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise RatingsFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        hint = ""
        if level == "ordinal" and categories is None and "is not a number" in str(exc):
            hint = " (ordinal text labels need --categories in their order, e.g. low,mid,high)"
        raise RatingsFileError(f"{exc}{hint}") from None
    return agreement_summary(
        ratings,
        level=cast("Level", level),
        weights=cast("KappaWeights", weights),
        n_resamples=resamples,
        seed=seed,
    )
