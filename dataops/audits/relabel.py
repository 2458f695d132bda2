"""Relabel rounds: the batch that takes an audited batch's unresolved items to its queue again.

A chain is the original batch (round 1) and the relabel batches that follow it (rounds 2, 3,
...). Each relabel batch records its round and the rule it is judged by (``answers`` asked
per item, ``agree`` matching answers that accept one), so a later change of defaults never
changes how a batch already sent is judged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.audits.decide import Decision, Item
from dataops.audits.policy import Policy
from dataops.errors import Conflict
from dataops.selection.models import Batch, BatchItem, ImageClaim

RELABEL = "relabel"


def round_of(batch: Batch) -> int:
    """1 for an original batch; a relabel batch made before rounds were recorded counts as 2."""
    if batch.purpose != RELABEL:
        return 1
    return int((batch.params or {}).get("round", 2))


def quorum_of(batch: Batch, policy: Policy) -> int | None:
    """Matching answers that accept an item of a relabel batch; None (unanimity) otherwise."""
    if batch.purpose != RELABEL:
        return None
    return int((batch.params or {}).get("agree", policy.relabel_agree))


def can_relabel(batch: Batch, policy: Policy) -> bool:
    """Whether the chain may have one more relabel batch after this one."""
    return round_of(batch) - 1 < policy.relabel_rounds


def _reason(decision: Decision) -> str:
    disputed = decision.disputed or ""
    if disputed.startswith("gold"):
        return "gold_miss"
    if disputed == "tie":
        return "tie"
    if disputed:
        return "no_quorum"
    return "failed" if decision.passed is False else "rejected_batch"


def create_relabel_batch(
    session: Session,
    parent: Batch,
    items: Sequence[tuple[Item, Decision]],
    policy: Policy,
    actor: str | None,
) -> Batch | None:
    """The items as a new draft batch for the same queue, each item claimed for it and asking
    for ``policy.relabel_answers`` answers."""
    if not items:
        return None
    image_ids = [item.image.id for item, _ in items]
    taken = session.execute(
        select(ImageClaim.image_id, ImageClaim.batch_id).where(ImageClaim.image_id.in_(image_ids))
    ).first()
    if taken is not None:
        raise Conflict(
            f"image {taken[0]} is already claimed by open batch {taken[1]}; close that batch "
            f"before auditing batch {parent.id}"
        )
    reasons = Counter(_reason(d) for _, d in items)
    n_gold = sum(item.batch_item.is_gold for item, _ in items)
    child = Batch(
        purpose=RELABEL,
        strategy=RELABEL,
        params={
            "parent_batch_id": parent.id,
            "reasons": dict(sorted(reasons.items())),
            "round": round_of(parent) + 1,
            "answers": policy.relabel_answers,
            "agree": policy.relabel_agree,
        },
        seed=parent.seed,
        model_version_id=parent.model_version_id,
        queue_id=parent.queue_id,
        parent_batch_id=parent.id,
        size=len(items),
        overlap=1.0,
        gold=n_gold / len(items),
        status="draft",
        requested_by=actor,
    )
    session.add(child)
    session.flush()
    for position, (item, _) in enumerate(items):
        source = item.batch_item
        session.add(
            BatchItem(
                batch_id=child.id,
                image_id=item.image.id,
                item_key=f"b{child.id}-i{item.image.id}",
                position=position,
                score=source.score,
                is_overlap=True,
                is_gold=source.is_gold,
                gold_label_version_id=source.gold_label_version_id,
                required_annotations=policy.relabel_answers,
            )
        )
        session.add(ImageClaim(image_id=item.image.id, batch_id=child.id))
    session.flush()
    return child
