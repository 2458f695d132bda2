import hashlib
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataops.errors import DataopsError
from dataops.manifests.splits import (
    SplitSpecError,
    assign_members,
    assign_splits,
    format_split_spec,
    parse_split_spec,
    split_point,
    stratum_balance,
)

SPEC = "train=0.8,val=0.1,test=0.1"

group_keys = st.text(min_size=1, max_size=12)
# member (image) -> group key; several members may share a group
membership = st.dictionaries(st.integers(0, 10_000), group_keys, min_size=1, max_size=200)


def test_parse_keeps_order_and_values():
    ratios = parse_split_spec(" val = 0.1, train=0.8 ,test=0.1")
    assert list(ratios.items()) == [("val", 0.1), ("train", 0.8), ("test", 0.1)]


def test_format_round_trips():
    ratios = parse_split_spec("a=0.3333333,b=0.3333333,c=0.3333334")
    assert parse_split_spec(format_split_spec(ratios)) == ratios
    assert format_split_spec(parse_split_spec(SPEC)) == SPEC


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("train", "expected NAME=RATIO"),
        ("train=", "expected NAME=RATIO"),
        ("=0.5,val=0.5", "expected NAME=RATIO"),
        ("train=abc", "not a number"),
        ("train=nan", "must be > 0"),
        ("train=1.1,val=-0.1", "must be > 0"),
        ("train=1,val=0", "must be > 0"),
        ("train=0.5,train=0.5", "appears twice"),
        ("train=0.5,val=0.4", "sum to 0.9"),
        ("train=0.5000011,val=0.5", "not 1"),
        ("my split=1", "bad split name"),
    ],
)
def test_bad_specs_name_the_problem(spec, message):
    with pytest.raises(SplitSpecError, match=message):
        parse_split_spec(spec)


def test_sum_within_tolerance_is_accepted():
    assert parse_split_spec("train=0.7000004,val=0.3")["train"] == 0.7000004


def test_split_point_is_the_documented_hash():
    # Pinned formula: changing it would move every group between manifest versions.
    digest = hashlib.sha256(b"42\x00group-7").digest()
    assert split_point("group-7", 42) == int.from_bytes(digest[:8], "big") / 2**64
    assert split_point(7, 42) == split_point("7", 42)


def test_mapping_spec_equals_text_spec():
    keys = [f"g{i}" for i in range(500)]
    assert assign_splits(keys, 3, SPEC) == assign_splits(
        keys, 3, {"train": 0.8, "val": 0.1, "test": 0.1}
    )


def test_order_of_spec_changes_intervals():
    keys = [f"g{i}" for i in range(2000)]
    a = assign_splits(keys, 0, "train=0.5,test=0.5")
    b = assign_splits(keys, 0, "test=0.5,train=0.5")
    assert all(a[k] != b[k] for k in keys)


@settings(max_examples=200, deadline=None)
@given(membership, st.integers(0, 2**32))
def test_no_group_straddles_splits(group_of, seed):
    splits = assign_members(group_of, seed, SPEC)
    assert splits.keys() == group_of.keys()
    by_group: dict[str, set[str]] = {}
    for member, key in group_of.items():
        by_group.setdefault(key, set()).add(splits[member])
    assert all(len(seen) == 1 for seen in by_group.values())


@settings(max_examples=100, deadline=None)
@given(
    st.sets(group_keys, min_size=1, max_size=100),
    st.sets(group_keys, max_size=100),
    st.sets(group_keys, max_size=100),
    st.integers(0, 2**32),
)
def test_existing_groups_never_move_when_groups_are_added(first, second, third, seed):
    gen1 = assign_splits(sorted(first), seed, SPEC)
    gen2 = assign_splits(sorted(first | second), seed, SPEC)
    gen3 = assign_splits(sorted(third | second | first, reverse=True), seed, SPEC)
    assert {k: gen2[k] for k in gen1} == gen1
    assert {k: gen3[k] for k in gen2} == gen2


@settings(max_examples=100, deadline=None)
@given(membership, st.dictionaries(st.integers(10_001, 20_000), group_keys, max_size=100))
def test_members_joining_groups_never_move_anyone(group_of, newcomers):
    before = assign_members(group_of, 11, SPEC)
    after = assign_members({**group_of, **newcomers}, 11, SPEC)
    assert {m: after[m] for m in before} == before


def test_ratios_honoured_on_100k_groups():
    n = 100_000
    ratios = parse_split_spec(SPEC)
    assignment = assign_splits(range(n), 1234, SPEC)
    for name, p in ratios.items():
        count = sum(1 for split in assignment.values() if split == name)
        # 5 standard deviations of a binomial: fails on a biased mapping, not by chance
        assert abs(count - n * p) < 5 * math.sqrt(n * p * (1 - p)), (name, count)


def test_seed_changes_assignment():
    keys = range(5000)
    a, b = assign_splits(keys, 1, SPEC), assign_splits(keys, 2, SPEC)
    moved = sum(a[k] != b[k] for k in keys)
    # two independent draws disagree with probability 1 - (0.64 + 0.01 + 0.01) = 0.34
    assert 0.30 * 5000 < moved < 0.38 * 5000


def test_single_split_takes_everything():
    assert set(assign_splits(range(100), 0, "all=1").values()) == {"all"}


def test_stratum_balance_counts_groups_per_stratum():
    keys = [f"g{i}" for i in range(30_000)]
    strata = {k: ("rare" if i % 100 == 0 else "common") for i, k in enumerate(keys)}
    assignment = assign_splits(keys, 5, SPEC)
    report = {b.stratum: b for b in stratum_balance(assignment, strata, SPEC)}
    assert report.keys() == {"common", "rare"}
    assert report["rare"].groups == 300
    assert report["common"].groups == 29_700
    for balance in report.values():
        assert sum(balance.counts.values()) == balance.groups
        expected_train = sum(1 for k in keys if strata[k] == balance.stratum) * 0.8
        assert balance.expected["train"] == pytest.approx(expected_train)
        # hash assignment is stratified in expectation: every stratum near its target
        assert balance.max_abs_z < 5


@settings(max_examples=100, deadline=None)
@given(membership, st.integers(0, 2**32))
def test_stratified_assignment_keeps_the_group_rule(group_of, seed):
    # one stratum per group (e.g. the representative's label); members inherit both
    strata = {key: f"class-{len(key) % 3}" for key in set(group_of.values())}
    splits = assign_members(group_of, seed, SPEC)
    group_splits = assign_splits(strata, seed, SPEC)
    assert all(splits[m] == group_splits[k] for m, k in group_of.items())
    report = stratum_balance(group_splits, strata, SPEC)
    assert sum(b.groups for b in report) == len(strata)


def test_stratum_balance_refuses_groups_without_stratum():
    assignment = assign_splits(["a", "b", "c"], 0, SPEC)
    with pytest.raises(DataopsError, match="1 groups have no stratum"):
        stratum_balance(assignment, {"a": "x", "b": "y"}, SPEC)
