"""CROWDLAB consensus on a small crafted case, checked against cleanlab called directly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cleanlab.multiannotator import get_label_quality_multiannotator

from dataops.quality.consensus import crowdlab

CLASSES = ["cat", "dog", "fox"]
# Item 3 is a tie between "a" and "c"; the model sides with "a".
ANSWERS = {
    1: {"a": "cat", "b": "cat", "c": "dog"},
    2: {"a": "dog", "b": "dog"},
    3: {"a": "fox", "c": "cat"},
    4: {"b": "dog", "c": "dog"},
    5: {"a": "cat", "b": "cat", "c": "fox"},
    6: {"a": "fox", "b": "fox", "c": "fox"},
}
PROBS = {
    1: [0.8, 0.1, 0.1],
    2: [0.1, 0.8, 0.1],
    3: [0.2, 0.1, 0.7],
    4: [0.2, 0.6, 0.2],
    5: [0.6, 0.2, 0.2],
    6: [0.1, 0.1, 0.8],
    7: [0.3, 0.3, 0.4],  # scored but unanswered: left out
}


def test_crowdlab_matches_cleanlab_called_directly() -> None:
    items, skills = crowdlab(ANSWERS, PROBS, CLASSES)
    keys = sorted(ANSWERS)
    grid = pd.DataFrame(
        [
            [CLASSES.index(ANSWERS[k][n]) if n in ANSWERS[k] else np.nan for n in "abc"]
            for k in keys
        ],
        columns=list("abc"),
    )
    direct = get_label_quality_multiannotator(
        grid, np.asarray([PROBS[k] for k in keys]), verbose=False
    )
    quality = direct["label_quality"]
    assert sorted(items) == keys
    assert [items[k].label for k in keys] == [CLASSES[int(c)] for c in quality.consensus_label]
    assert [items[k].quality for k in keys] == pytest.approx(
        quality.consensus_quality_score.tolist()
    )
    assert [items[k].answers for k in keys] == quality.num_annotations.tolist()
    stats = direct["annotator_stats"]
    assert {s.annotator: s.quality for s in skills} == pytest.approx(
        stats["annotator_quality"].to_dict()
    )
    assert [s.quality for s in skills] == sorted((s.quality for s in skills), reverse=True)
    assert items[3].label == "fox"
    assert skills[-1].annotator == "c"


def test_unknown_classes_are_refused() -> None:
    with pytest.raises(ValueError, match="owl"):
        crowdlab({1: {"a": "owl"}}, {1: [0.5, 0.25, 0.25]}, CLASSES)


def test_nothing_to_weigh_gives_nothing() -> None:
    assert crowdlab({1: {"a": "cat"}}, {2: [0.5, 0.25, 0.25]}, CLASSES) == ({}, [])


def test_a_queue_rule_other_than_majority_or_consensus_is_refused() -> None:
    from dataops.audits import policy
    from dataops.audits.errors import AuditInputError

    assert policy.check(accept_rule="consensus").accept_rule == "consensus"
    assert policy.of_queue(None).accept_rule == "majority"
    with pytest.raises(AuditInputError) as exc:
        policy.check(accept_rule="vote")
    assert str(exc.value) == "accept_rule must be one of majority, consensus, got 'vote'"


def test_one_answer_per_item_is_refused_by_cleanlab() -> None:
    # consensus_of checks this first, so an audit reports it instead of failing.
    with pytest.raises(ValueError, match="only has one label"):
        crowdlab({1: {"a": "cat"}, 2: {"b": "dog"}}, PROBS, CLASSES)
