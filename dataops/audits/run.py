"""Run an audit on a labeled batch: agreement, gold checks, the acceptance gate, and what the
decision does to the batch, its labels and its items.

Answers are collected by ``dataops.audits.answers``. Two answers *match* when their classes
are equal (classification) or, for detection, when every box of one is matched one-to-one to
a box of the same class in the other at IoU >= 0.5 (Hungarian matching, as in
``dataops.audits.boxes``).

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

Where a model has scored the batch's images, CROWDLAB consensus labels, per-item consensus
quality and annotator quality are added beside the agreement metrics, and a queue whose
``accept_rule`` is ``consensus`` takes the consensus as an item's accepted label
(``dataops.audits.consensus``); the rule in force and the one applied are recorded.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

import dataops.models  # noqa: F401  (every table: flushing a Batch resolves all its foreign keys)
from dataops.audits import policy as policies
from dataops.audits import relabel as rounds
from dataops.audits import tables
from dataops.audits.answers import Answers, load_answers
from dataops.audits.consensus import audit_consensus, ranked_annotators
from dataops.audits.decide import (
    ACCEPTED_OUTCOME,
    IOU_THRESHOLD,
    RELABEL,
    RELEASED_OUTCOME,
    Decision,
    Item,
    decide,
    outcome,
    same_boxes,
    same_class,
)
from dataops.audits.disputed import file_name
from dataops.audits.errors import NothingToAudit
from dataops.audits.models import Audit
from dataops.audits.report import (
    OUTCOMES,
    AnnotatorRow,
    AuditReport,
    GateResult,
    OutcomeReport,
    VendorRow,
    disputed_entry,
    store_report,
    thumbnails,
    to_json,
)
from dataops.audits.report_html import render_html
from dataops.audits.service import check_auditable
from dataops.database.dialect import reserve_id
from dataops.db import utcnow
from dataops.events import service as events
from dataops.labeling import service as labeling
from dataops.labeling.models import ACCEPTED, REJECTED, RELEASED, SUBMITTED, Queue
from dataops.selection.models import Batch, ImageClaim

if TYPE_CHECKING:
    from dataops.audits.policy import Policy
    from dataops.audits.schemas import AuditRequest
    from dataops.storage import BlobStore


@dataclass
class _Judged:
    """Every item's verdict, the gate and the agreement tables, before anything changes."""

    answers: Answers
    decisions: list[Decision]
    gate: GateResult
    agreement: tables.Agreement
    gold: dict[str, dict[str, Any]]
    annotators: list[AnnotatorRow]
    vendors: list[VendorRow]
    policy: Policy
    quorum: int | None
    consensus: dict[str, Any]
    consensus_items: dict[int, dict[str, Any]]

    @property
    def disputed(self) -> list[tuple[Item, Decision]]:
        pairs = zip(self.answers.items, self.decisions, strict=True)
        return [(item, d) for item, d in pairs if d.disputed]


@dataclass
class _Outcomes:
    """What the decision does: each item's outcome and the label status changes."""

    per_item: list[str]
    unresolved: list[Item]
    changes: dict[str, list[int]]
    claims_released: int
    relabel: Batch | None


def run_audit(
    session: Session,
    request: AuditRequest,
    *,
    actor: str | None = None,
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
    from dataops.storage import get_store

    store = store or get_store()
    batch = check_auditable(session, request.batch_id, lock=True)
    queue = session.get(Queue, batch.queue_id) if batch.queue_id is not None else None
    judged = _judge(session, batch, queue, request)
    done = _apply(session, batch, judged, actor)
    # Known before the insert so the report files are named by it: audits are immutable.
    audit_id = reserve_id(session, Audit.__table__)
    report = _report(audit_id, batch, queue, judged, done)
    metrics = _metrics(audit_id, batch, request, judged, done, report)
    items = _item_rows(judged.answers.items, judged.decisions, done.per_item)
    for row in items:
        row["consensus"] = judged.consensus_items.get(row["image_id"])
    pictures = thumbnails([item.image for item, _ in judged.disputed], store)
    json_key, html_key = store_report(
        store, audit_id, {**metrics, "items": items}, render_html(report, pictures)
    )
    audit = Audit(
        id=audit_id,
        batch_id=batch.id,
        gate=request.gate,
        pass_rate=judged.gate["pass_rate"],
        decision=_decision(judged.gate),
        metrics=metrics,
        report_json_key=json_key,
        report_html_key=html_key,
        relabel_batch_id=done.relabel.id if done.relabel else None,
        created_by=actor,
    )
    session.add(audit)
    session.flush()
    _record_events(session, audit, batch, done, actor)
    return audit


def _judge(session: Session, batch: Batch, queue: Queue | None, request: AuditRequest) -> _Judged:
    answers = load_answers(session, batch, request.task)
    items = answers.items
    policy = policies.of_queue(queue)
    quorum = rounds.quorum_of(batch, policy)
    same = same_boxes if answers.kind == "detection" else same_class
    decisions = [decide(item, same, quorum=quorum) for item in items]
    consensus, decisions, per_item = audit_consensus(session, answers, decisions, policy, quorum)
    gate = _pass_rate(batch, decisions, request.gate)
    if answers.kind == "detection":
        agreement = tables.detection_agreement(items)
    else:
        agreement = tables.classification_agreement(
            items, decisions, resamples=request.resamples, seed=request.seed
        )
    gold = tables.gold_scores(items, same, request.gold_threshold)
    annotators = tables.annotator_rows(items, agreement, gold, answers.vendor_of)
    vendors = tables.vendor_rows(items, decisions, annotators, gold)
    ranked_annotators(consensus, annotators)
    return _Judged(
        answers,
        decisions,
        gate,
        agreement,
        gold,
        annotators,
        vendors,
        policy,
        quorum,
        consensus,
        per_item,
    )


def _report(
    audit_id: int, batch: Batch, queue: Queue | None, judged: _Judged, done: _Outcomes
) -> AuditReport:
    agreement = judged.agreement
    queue_name = queue.name if queue is not None else None
    report = AuditReport(
        title=f"Audit {audit_id} of batch {batch.id}",
        batch=f"{batch.id} ({batch.purpose}" + (f", queue {queue_name})" if queue_name else ")"),
        generated_at=utcnow().isoformat(timespec="seconds"),
        summary=agreement.summary,
        gate=judged.gate,
        annotators=judged.annotators,
        classes=agreement.classes,
        vendors=judged.vendors,
        disputed=[disputed_entry(item, d, _task_link(batch, queue)) for item, d in judged.disputed],
        outcome=_outcome_report(batch, judged.policy, judged.quorum, done),
        consensus=judged.consensus,
    )
    if agreement.pairwise is not None:
        report["pairwise"] = agreement.pairwise
    if agreement.confusion is not None:
        report["confusion"] = agreement.confusion
    if "boxes" in agreement.extra:
        report["boxes"] = agreement.extra["boxes"]
    return report


def _task_link(batch: Batch, queue: Queue | None) -> Callable[[int | None], str | None]:
    """Label Studio task id -> a link to the task in the batch's project."""
    from dataops.audits.disputed import task_url

    connection = queue.connection if queue is not None else "default"
    project = batch.ls_project_id or (queue.ls_project_id if queue is not None else None)
    return lambda task_id: task_url(connection, project, task_id)


def _metrics(
    audit_id: int,
    batch: Batch,
    request: AuditRequest,
    judged: _Judged,
    done: _Outcomes,
    report: AuditReport,
) -> dict[str, Any]:
    """The audit's stored metrics: the report plus the parameters and counts, as JSON."""
    metrics: dict[str, Any] = {
        **report,
        **{k: v for k, v in judged.agreement.extra.items() if k != "boxes"},
        "audit_id": audit_id,
        "batch_id": batch.id,
        "decision": _decision(judged.gate),
        "kind": judged.answers.kind,
        "task": judged.answers.task,
        "relabel_batch_id": done.relabel.id if done.relabel else None,
        "parameters": {
            "gate": request.gate,
            "seed": request.seed,
            "resamples": request.resamples,
            "gold_threshold": request.gold_threshold,
            "iou_threshold": IOU_THRESHOLD,
            "quorum": judged.quorum,
            "policy": judged.policy.as_dict(),
        },
        "gold": judged.gold,
        "counts": _counts(judged, done),
    }
    return dict(json.loads(to_json(metrics)))


def _decision(gate: GateResult) -> str:
    return "accepted" if gate["accepted"] else "rejected"


def _pass_rate(batch: Batch, decisions: Sequence[Decision], gate: float) -> GateResult:
    """The pass rate of the audited items against the gate."""
    audited = [d for d in decisions if d.audited]
    if not audited:
        raise NothingToAudit(
            f"batch {batch.id} has no item answered by two annotators and no answered gold "
            "item: there is no pass rate to compare with the gate"
        )
    n_passed = sum(bool(d.passed) for d in audited)
    pass_rate = n_passed / len(audited)
    return GateResult(
        gate=gate,
        pass_rate=pass_rate,
        n_items=len(audited),
        n_passed=n_passed,
        accepted=pass_rate >= gate,
    )


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


def _apply(session: Session, batch: Batch, judged: _Judged, actor: str | None) -> _Outcomes:
    """Label statuses, the batch's decision, its released claims and the relabel batch."""
    items, decisions, policy = judged.answers.items, judged.decisions, judged.policy
    accepted = judged.gate["accepted"]
    relabel_allowed = rounds.can_relabel(batch, policy)
    outcomes: list[str] = []
    unresolved: list[Item] = []
    for item, d in zip(items, decisions, strict=True):
        result = outcome(item, d, accepted=accepted, policy=policy)
        if result == RELABEL and not relabel_allowed:
            result = RELEASED_OUTCOME
            unresolved.append(item)
        outcomes.append(result)
    changes = _status_changes(items, decisions, outcomes)
    reason = f"audit of batch {batch.id}"
    for status, ids in changes.items():
        for version_id in ids:
            labeling.set_status(session, version_id, status, actor=actor, reason=reason)
    batch.status = "accepted" if accepted else "rejected"
    batch.closed_at = utcnow()
    released = session.execute(delete(ImageClaim).where(ImageClaim.batch_id == batch.id))
    session.flush()
    to_relabel = [
        (item, d)
        for item, d, result in zip(items, decisions, outcomes, strict=True)
        if result == RELABEL
    ]
    relabel = rounds.create_relabel_batch(session, batch, to_relabel, policy, actor)
    return _Outcomes(
        outcomes,
        unresolved,
        changes,
        int(released.rowcount),  # type: ignore[attr-defined]
        relabel,
    )


def _outcome_report(
    batch: Batch, policy: Policy, quorum: int | None, done: _Outcomes
) -> OutcomeReport:
    counts = Counter(done.per_item)
    return OutcomeReport(
        policy=policy.as_dict(),
        rule=(
            f"passes with {quorum} matching answers (relabel round {rounds.round_of(batch)})"
            if quorum is not None
            else "passes when every answer matches (unanimous, or the gold answer)"
        ),
        relabel_rule=policy.rule(),
        round=rounds.round_of(batch),
        items={name: counts[name] for name in OUTCOMES},
        relabel_batch_id=done.relabel.id if done.relabel else None,
        unresolved=[item.image.sha256 for item in done.unresolved],
        unresolved_files=[
            f"{file_name(item.image.uri)} (image {item.image.id})" for item in done.unresolved
        ],
    )


def _counts(judged: _Judged, done: _Outcomes) -> dict[str, int]:
    answers, decisions, gate = judged.answers, judged.decisions, judged.gate
    roles = Counter(d.role for d in decisions)
    outcomes = Counter(done.per_item)
    return {
        "items": len(answers.items),
        "audited": gate["n_items"],
        "passed": gate["n_passed"],
        "disputed": len(judged.disputed),
        "overlap": sum(len(item.answers) >= 2 for item in answers.items),
        "gold": roles["gold"],
        "adjudicated": roles["adjudicated"],
        "single": roles["single"],
        "relabel": roles["relabel"],
        "unlabeled": roles["unlabeled"],
        "unattributed_labels": answers.unattributed,
        "labels_accepted": len(done.changes[ACCEPTED]),
        "labels_rejected": len(done.changes[REJECTED]),
        "labels_released": len(done.changes[RELEASED]),
        "items_accepted": outcomes[ACCEPTED_OUTCOME],
        "items_relabeled": outcomes[RELABEL],
        "items_released": outcomes[RELEASED_OUTCOME],
    }


def _item_rows(
    items: Sequence[Item], decisions: Sequence[Decision], outcomes: Sequence[str]
) -> list[dict[str, Any]]:
    """Each item's role, verdict, outcome and answers, for the JSON report."""
    return [
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
    ]


def _record_events(
    session: Session, audit: Audit, batch: Batch, done: _Outcomes, actor: str | None
) -> None:
    events.record(
        session,
        "audit.created",
        "audit",
        audit.id,
        actor=actor,
        details={
            "batch_id": batch.id,
            "decision": audit.decision,
            "pass_rate": audit.pass_rate,
            "gate": audit.gate,
            "relabel_batch_id": audit.relabel_batch_id,
        },
    )
    events.record(
        session,
        f"batch.{audit.decision}",
        "batch",
        batch.id,
        actor=actor,
        details={
            "audit_id": audit.id,
            "pass_rate": audit.pass_rate,
            "gate": audit.gate,
            "claims_released": done.claims_released,
        },
    )
    if done.relabel is not None:
        events.record(
            session,
            "batch.created",
            "batch",
            done.relabel.id,
            actor=actor,
            details={
                "purpose": "relabel",
                "parent_batch_id": batch.id,
                "audit_id": audit.id,
                "items": done.relabel.size,
            },
        )
