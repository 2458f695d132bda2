"""How an audit judges each item of a batch, and what the batch's decision does with it.

Judging (``decide``). Two answers *match* when their classes are equal (classification) or,
for detection, when every box of one is matched one-to-one to a box of the same class in the
other at IoU >= 0.5. The reference of an item is its gold answer, else a live adjudicated one.

- Regular batches: an audited item passes when every annotator answer matches its reference,
  or, without one, when the answers are unanimous (a majority that is not unanimous fails; a
  tie fails and is *disputed*, and so is a gold item where any answer misses the gold answer).
- Relabel batches (``quorum`` k, "k of n"): an item passes when at least k answers match its
  reference, or, without one, when its largest group of matching answers has k members and no
  other group is as large; any item with an answer is audited, and one that does not pass is
  disputed.

Outcomes (``outcome``), per item with answers; unanswered items just go back to the pool:

- ``accepted``: the batch was accepted and the item is not disputed. Its matching answers are
  accepted, the outvoted ones rejected.
- ``relabel``: the item goes to the relabel batch; its answers are released.
- ``released``: its answers are released (kept, no ground truth, image back to the pool).

An accepted batch relabels its disputed items. A rejected batch follows the queue's
``on_reject`` (``dataops.audits.policy``). A chain that has used up its relabel rounds
releases the items it would have relabeled (they are listed as unresolved).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dataops.audits.policy import RELABEL_ALL, RELABEL_FAILED, Policy
from dataops.catalog.models import Image
from dataops.labeling.models import LabelVersion
from dataops.selection.models import BatchItem

IOU_THRESHOLD = 0.5
ACCEPTED_OUTCOME, RELABEL, RELEASED_OUTCOME, UNANSWERED = (
    "accepted",
    "relabel",
    "released",
    "unanswered",
)

Payload = dict[str, Any]
Same = Callable[[Payload, Payload], bool]


@dataclass
class Item:
    batch_item: BatchItem
    image: Image
    answers: dict[str, LabelVersion] = field(default_factory=dict)
    gold: LabelVersion | None = None
    adjudicated: LabelVersion | None = None

    @property
    def reference(self) -> LabelVersion | None:
        return self.gold or self.adjudicated


@dataclass
class Decision:
    """What the audit concluded about one item; ``passed`` is None when it is not audited."""

    role: str
    label: Payload | None
    winners: list[LabelVersion]
    losers: list[LabelVersion]
    passed: bool | None
    disputed: str | None = None

    @property
    def audited(self) -> bool:
        return self.passed is not None


def same_class(a: Payload, b: Payload) -> bool:
    return bool(a["class"] == b["class"])


def same_boxes(a: Payload, b: Payload) -> bool:
    """Every box matched one-to-one to a same-class box at IoU >= IOU_THRESHOLD."""
    from dataops.audits.boxes import match_boxes

    if len(a["boxes"]) != len(b["boxes"]):
        return False
    for cls in {box["class"] for box in [*a["boxes"], *b["boxes"]]}:
        xa = [[x["x"], x["y"], x["w"], x["h"]] for x in a["boxes"] if x["class"] == cls]
        xb = [[x["x"], x["y"], x["w"], x["h"]] for x in b["boxes"] if x["class"] == cls]
        if len(xa) != len(xb):
            return False
        if len(match_boxes(xa, xb, iou_threshold=IOU_THRESHOLD).rows) != len(xa):
            return False
    return True


def describe(payload: Payload | None) -> str:
    if payload is None:
        return "tie"
    if "class" in payload:
        return str(payload["class"])
    counts = Counter(str(box["class"]) for box in payload["boxes"])
    if not counts:
        return "no boxes"
    return ", ".join(f"{cls} ×{n}" if n > 1 else cls for cls, n in sorted(counts.items()))


def _groups(answers: list[LabelVersion], same: Same) -> list[list[LabelVersion]]:
    """Answers grouped by matching, the largest group first."""
    groups: list[list[LabelVersion]] = []
    for v in answers:
        for group in groups:
            if same(group[0].payload, v.payload):
                group.append(v)
                break
        else:
            groups.append([v])
    groups.sort(key=len, reverse=True)
    return groups


def decide(item: Item, same: Same, *, quorum: int | None = None) -> Decision:
    """The item's accepted label, whether it passes, and whether it is disputed.

    ``quorum`` None is the rule of regular batches (unanimity); a number is the "k of n" rule
    of relabel batches.
    """
    answers = list(item.answers.values())
    reference = item.reference
    role = "gold" if item.gold is not None else "adjudicated"
    if reference is not None and answers:
        winners = [v for v in answers if same(v.payload, reference.payload)]
        losers = [v for v in answers if v not in winners]
        if quorum is not None:
            if len(winners) >= quorum:
                return Decision(role, reference.payload, winners, losers, True)
            reason = (
                f"{len(winners)} of {len(answers)} answers match the {role} answer "
                f"{describe(reference.payload)}; {quorum} needed"
            )
            return Decision(role, reference.payload, winners, losers, False, reason)
        disputed = None
        if losers and role == "gold":
            disputed = f"gold miss: the gold answer is {describe(reference.payload)}"
        return Decision(role, reference.payload, winners, losers, not losers, disputed)
    if quorum is not None and answers:
        groups = _groups(answers, same)
        top = groups[0]
        tied = len(groups) > 1 and len(groups[1]) == len(top)
        if len(top) >= quorum and not tied:
            losers = [v for v in answers if v not in top]
            return Decision("relabel", top[0].payload, top, losers, True)
        reason = (
            f"{len(top)} of {len(answers)} answers match; {quorum} needed"
            if len(top) < quorum
            else "tie"
        )
        return Decision("relabel", None, [], [], False, reason)
    if len(answers) >= 2:
        groups = _groups(answers, same)
        if len(groups) > 1 and len(groups[0]) == len(groups[1]):
            return Decision("overlap", None, [], [], False, "tie")
        top = groups[0]
        losers = [v for v in answers if v not in top]
        return Decision("overlap", top[0].payload, top, losers, not losers)
    if answers:
        return Decision("single", answers[0].payload, answers, [], None)
    return Decision("unlabeled", None, [], [], None)


def outcome(item: Item, decision: Decision, *, accepted: bool, policy: Policy) -> str:
    """What the batch's decision does with one item (see the module docstring); the caller
    turns ``relabel`` into ``released`` when the chain has no relabel round left."""
    if not item.answers:
        return UNANSWERED
    if accepted:
        relabel = decision.disputed is not None
    elif policy.on_reject == RELABEL_ALL:
        relabel = True
    elif policy.on_reject == RELABEL_FAILED:
        relabel = decision.passed is False
    else:
        relabel = False
    if relabel:
        return RELABEL
    return ACCEPTED_OUTCOME if accepted else RELEASED_OUTCOME
