"""The item rules of audits ("unanimous" for regular batches, "k of n" for relabel rounds) and
the outcome table of a decided batch, on transient rows (no database)."""

from __future__ import annotations

import pytest

from dataops.audits import policy
from dataops.audits.decide import Decision, Item, decide, outcome, same_class
from dataops.audits.errors import AuditInputError
from dataops.catalog.models import Image
from dataops.labeling.models import LabelVersion
from dataops.selection.models import BatchItem


def _item(*answers: str, gold: str | None = None) -> Item:
    item = Item(BatchItem(image_id=1, is_gold=gold is not None), Image(id=1, sha256="a" * 64))
    for n, cls in enumerate(answers):
        item.answers[f"annotator{n}"] = LabelVersion(id=n + 1, payload={"class": cls})
    if gold is not None:
        item.gold = LabelVersion(id=99, payload={"class": gold})
    return item


def _summary(decision: Decision) -> tuple[bool | None, str | None, int, int]:
    return decision.passed, decision.disputed, len(decision.winners), len(decision.losers)


@pytest.mark.parametrize(
    ("answers", "quorum", "expected"),
    [
        (("cat", "cat", "dog"), None, (False, None, 2, 1)),  # majority, not unanimous
        (("cat", "cat"), None, (True, None, 2, 0)),
        (("cat", "dog"), None, (False, "tie", 0, 0)),
        (("cat", "cat", "dog"), 2, (True, None, 2, 1)),  # 2 of 3
        (("cat", "cat", "dog", "dog"), 2, (False, "tie", 0, 0)),  # two groups reach k
        (("cat", "cat", "dog"), 3, (False, "2 of 3 answers match; 3 needed", 0, 0)),
        (("cat", "dog", "bird"), 2, (False, "1 of 3 answers match; 2 needed", 0, 0)),
        (("cat",), 2, (False, "1 of 1 answers match; 2 needed", 0, 0)),  # short of answers
    ],
)
def test_item_rules(
    answers: tuple[str, ...], quorum: int | None, expected: tuple[object, ...]
) -> None:
    assert _summary(decide(_item(*answers), same_class, quorum=quorum)) == expected


def test_gold_items_in_relabel_rounds_count_matches_with_the_gold_answer() -> None:
    passed = decide(_item("cat", "cat", "dog", gold="cat"), same_class, quorum=2)
    assert _summary(passed) == (True, None, 2, 1)
    missed = decide(_item("cat", "dog", "dog", gold="cat"), same_class, quorum=2)
    assert missed.passed is False
    assert missed.disputed == "1 of 3 answers match the gold answer cat; 2 needed"
    # Regular batches: any miss of the gold answer fails and disputes the item.
    regular = decide(_item("cat", "cat", "dog", gold="cat"), same_class)
    assert (regular.passed, regular.disputed) == (False, "gold miss: the gold answer is cat")


@pytest.mark.parametrize(
    ("accepted", "on_reject", "answers", "expected"),
    [
        (True, "relabel_failed", ("cat", "cat", "dog"), "accepted"),  # majority accepted
        (True, "release", ("cat", "dog"), "relabel"),  # accepted batches relabel ties
        (False, "relabel_failed", ("cat", "cat"), "released"),
        (False, "relabel_failed", ("cat", "cat", "dog"), "relabel"),
        (False, "relabel_failed", ("cat",), "released"),  # single answer, not audited
        (False, "relabel_all", ("cat", "cat"), "relabel"),
        (False, "release", ("cat", "dog"), "released"),
        (False, "relabel_all", (), "unanswered"),
    ],
)
def test_outcomes(accepted: bool, on_reject: str, answers: tuple[str, ...], expected: str) -> None:
    item = _item(*answers)
    rules = policy.check(on_reject=on_reject)
    assert outcome(item, decide(item, same_class), accepted=accepted, policy=rules) == expected


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"on_reject": "keep"}, "on_reject must be one of relabel_failed, relabel_all, release"),
        ({"relabel_answers": 1}, "relabel_answers must be between 2 and 9, got 1"),
        ({"relabel_answers": 4, "relabel_agree": 2}, r"majority of relabel_answers \(3 to 4\)"),
        ({"relabel_agree": 4}, r"\(2 to 3\), got 4"),
        ({"relabel_rounds": 11}, "relabel_rounds must be between 0 and 10, got 11"),
    ],
)
def test_policy_checks_name_the_field(settings: dict[str, object], message: str) -> None:
    with pytest.raises(AuditInputError, match=message):
        policy.check(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("purpose", "params", "rounds", "expected"),
    [
        ("active_learning", {}, 0, (1, None, False)),  # no relabel rounds: release instead
        ("active_learning", {}, 2, (1, None, True)),
        ("relabel", {"round": 2, "agree": 3}, 2, (2, 3, True)),
        ("relabel", {"round": 3, "agree": 2}, 2, (3, 2, False)),  # the last round
        ("relabel", {}, 1, (2, 2, False)),  # made before rounds were recorded
    ],
)
def test_rounds_of_a_chain(
    purpose: str, params: dict[str, int], rounds: int, expected: tuple[object, ...]
) -> None:
    from dataops.audits import relabel
    from dataops.selection.models import Batch

    batch = Batch(purpose=purpose, params=params)
    rules = policy.check(relabel_rounds=rounds)
    assert (
        relabel.round_of(batch),
        relabel.quorum_of(batch, rules),
        relabel.can_relabel(batch, rules),
    ) == expected
