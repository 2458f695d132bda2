"""CROWDLAB consensus in an audit: consensus labels, per-item consensus quality and annotator
quality next to the agreement metrics, and the ``consensus`` acceptance rule.

Computed when a model version has scored the batch's images and the answers are
classification answers; otherwise the report says why there is none. Under a queue's
``consensus`` rule (``dataops.audits.policy``) an item without a gold or adjudicated answer
takes the consensus as its accepted label: answers that match it are accepted, the others
rejected, and a tie the consensus settles is no longer disputed. An item none of whose answers
names the consensus (a single answer the model and the annotators' skill overrule, too) is
disputed, so a person decides. Whether an item *passes* (every answer matches its label) is
judged as before, so the gate keeps measuring how often annotators agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from dataops.audits.answers import Answers
from dataops.audits.decide import Decision, Item
from dataops.audits.policy import CONSENSUS, MAJORITY, Policy
from dataops.audits.report import AnnotatorRow


def audit_consensus(
    session: Session,
    answers: Answers,
    decisions: list[Decision],
    policy: Policy,
    quorum: int | None,
) -> tuple[dict[str, Any], list[Decision], dict[int, dict[str, Any]]]:
    """The report's consensus section, the decisions under the rule in force, and each
    item's consensus (by image id) for the JSON report's items."""
    from dataops.quality.consensus import consensus_of

    section: dict[str, Any] = {"rule": policy.accept_rule, "applied": MAJORITY}
    if answers.kind != "classification":
        section["reason"] = "consensus covers classification answers only"
        return section, decisions, {}
    given = {
        item.image.id: {name: str(v.payload["class"]) for name, v in item.answers.items()}
        for item in answers.items
        if item.answers
    }
    result, reason = consensus_of(session, given)
    if result is None:
        section["reason"] = reason
        return section, decisions, {}
    section.update(result.as_dict())
    per_item = {k: vars(c) for k, c in result.items.items()}
    if policy.accept_rule == CONSENSUS and quorum is None:
        section["applied"] = CONSENSUS
        decisions = [
            _by_consensus(item, d, per_item[item.image.id]["label"])
            if item.image.id in per_item
            else d
            for item, d in zip(answers.items, decisions, strict=True)
        ]
    return section, decisions, per_item


def _by_consensus(item: Item, decision: Decision, label: str) -> Decision:
    if decision.role not in ("overlap", "single"):
        return decision
    answers = list(item.answers.values())
    winners = [v for v in answers if v.payload.get("class") == label]
    losers = [v for v in answers if v not in winners]
    passed = not losers if decision.role == "overlap" else None
    if not winners:
        # No answer names the consensus class: nothing to accept, a person decides.
        reason = f"consensus {label} matches no answer"
        return Decision(decision.role, None, [], [], False if passed is not None else None, reason)
    return Decision(decision.role, dict(winners[0].payload), winners, losers, passed)


def ranked_annotators(section: dict[str, Any], rows: Sequence[AnnotatorRow]) -> None:
    """Put each annotator's gold accuracy beside their consensus quality (best first)."""
    gold = {row["annotator"]: row for row in rows}
    for entry in section.get("annotators", []):
        row = gold.get(entry["annotator"], AnnotatorRow(annotator=entry["annotator"]))
        entry["gold_accuracy"] = row.get("gold_accuracy")
        entry["n_gold"] = row.get("n_gold", 0)
