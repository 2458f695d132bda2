"""Duplicate grouping: anti-chaining guard, representatives, confirmation, incremental merges."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from dataops.catalog.hashing import compute_hashes, hamming
from dataops.dedup.grouping import (
    DedupParams,
    ImageHashes,
    confirm_pairs,
    find_new_pairs,
    find_pairs,
    group_pairs,
    mirror_dhash,
    representative_rank,
)
from dataops.dedup.index import HashIndex, Pairs
from dataops.dedup.merges import plan_merges
from tests.support.corpus import CORPUS

KODAK = CORPUS / "kodak-photocd"
PHASH_ONLY = DedupParams(joint_radius=None, flip=False)


def bits(count: int, offset: int = 0) -> int:
    """A hash with ``count`` consecutive bits set from ``offset``."""
    return ((1 << count) - 1) << offset


def _hashes(values: list[int], ids: list[int] | None = None) -> ImageHashes:
    ids = ids if ids is not None else list(range(1, len(values) + 1))
    return ImageHashes(ids=np.array(ids), phash=np.array(values, dtype=np.uint64))


def _members(grouping, image_id: int) -> set[int]:
    label = grouping.labels[list(grouping.ids).index(image_id)]
    return set() if label < 0 else set(grouping.ids[grouping.labels == label].tolist())


def test_chain_is_split_at_the_representative() -> None:
    # A-B and B-C are 6 apart, A-C 12: components would chain all three.
    hashes = _hashes([0, bits(6), bits(12)])
    pairs = find_pairs(hashes, PHASH_ONLY)
    assert {(int(i), int(j)) for i, j in zip(pairs.i, pairs.j, strict=True)} == {(1, 2), (2, 3)}

    a_first = group_pairs(hashes, pairs, rank=[0, 1, 2], params=PHASH_ONLY)
    c_first = group_pairs(hashes, pairs, rank=[2, 1, 0], params=PHASH_ONLY)
    loose = group_pairs(hashes, pairs, rank=[0, 1, 2], params=DedupParams(rep_radius=12))

    assert [g.tolist() for g in a_first.groups()] == [[1, 2]]
    assert a_first.labels[2] == -1
    assert len(a_first.report.split_components) == 1
    assert a_first.report.split_components[0].size == 3
    assert a_first.report.split_components[0].representatives == (1, 3)
    assert [g.tolist() for g in c_first.groups()] == [[3, 2]]
    assert [g.tolist() for g in loose.groups()] == [[1, 2, 3]]
    assert loose.report.split_components == ()


def test_split_off_members_are_regrouped() -> None:
    # A-B-C-D chain; C and D are 2 apart, far from A.
    hashes = _hashes([0, bits(6), bits(12), bits(12) ^ bits(2, 40)])
    pairs = find_pairs(hashes, PHASH_ONLY)

    grouping = group_pairs(hashes, pairs, rank=[0, 1, 2, 3], params=PHASH_ONLY)

    assert [g.tolist() for g in grouping.groups()] == [[1, 2], [3, 4]]
    np.testing.assert_array_equal(grouping.representatives, [1, 3])


def test_representative_is_largest_then_oldest() -> None:
    ids = [10, 11, 12, 13]
    rank = representative_rank(ids, pixels=[100, 400, 400, 50], created=[0, 5.0, 2.0, 1.0])
    assert rank.tolist() == [2, 1, 0, 3]
    tie = representative_rank([7, 3], pixels=[9, 9], created=[1, 1])
    assert tie.tolist() == [1, 0]

    hashes = _hashes([0, 1, 3, 7], ids)
    grouping = group_pairs(hashes, find_pairs(hashes, PHASH_ONLY), rank, PHASH_ONLY)
    assert grouping.representatives.tolist() == [12]
    assert grouping.groups()[0].tolist() == [12, 10, 11, 13]


def _random_hashes(seed: int, n: int) -> ImageHashes:
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2**63, size=max(1, n // 5), dtype=np.uint64)
    picks = centres[rng.integers(0, centres.shape[0], size=n)]
    noise = np.zeros(n, dtype=np.uint64)
    for _ in range(4):
        noise ^= np.uint64(1) << rng.integers(0, 64, size=n, dtype=np.uint64)
    phash = picks ^ noise
    dhash = phash ^ (np.uint64(1) << rng.integers(0, 64, size=n, dtype=np.uint64))
    # Mirrored pHash: mostly unrelated, sometimes another cluster's centre.
    flip = rng.integers(0, 2**63, size=n, dtype=np.uint64)
    mirrored = rng.random(n) < 0.2
    flip[mirrored] = centres[rng.integers(0, centres.shape[0], size=int(mirrored.sum()))]
    ids = rng.permutation(10 * n)[:n].astype(np.int64)
    return ImageHashes(ids=ids, phash=phash, dhash=dhash, phash_flip=flip)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 120))
def test_groups_are_order_independent_and_guarded(seed: int, n: int) -> None:
    params = DedupParams(radius=8, joint_radius=None)
    hashes = _random_hashes(seed, n)
    rank = np.random.default_rng(seed + 1).permutation(n)
    pairs = find_pairs(hashes, params)
    perm = np.random.default_rng(seed + 2).permutation(len(pairs))
    shuffled = Pairs(pairs.j[perm], pairs.i[perm], pairs.dist[perm])

    first = group_pairs(hashes, pairs, rank, params)
    again = group_pairs(hashes, Pairs.concat([shuffled, pairs]), rank, params)

    np.testing.assert_array_equal(first.labels, again.labels)
    np.testing.assert_array_equal(first.representatives, again.representatives)
    for group in first.groups():
        rep = hashes.positions(group[:1])[0]
        rows = hashes.positions(group)
        direct = np.bitwise_count(hashes.phash[rep] ^ hashes.phash[rows])
        mirrored = np.minimum(
            np.bitwise_count(hashes.phash_flip[rep] ^ hashes.phash[rows]),
            np.bitwise_count(hashes.phash[rep] ^ hashes.phash_flip[rows]),
        )
        assert (np.minimum(direct, mirrored) <= params.radius).all()
        assert rank[rep] == rank[rows].min()


def test_dhash_confirmation_rejects_different_shots_on_one_backdrop() -> None:
    # pHash 10 apart in both cases; only the dHash tells the garments apart.
    hashes = ImageHashes(
        ids=np.array([1, 2, 3, 4]),
        phash=np.array([0, bits(10), bits(20, 30), bits(20, 30) ^ bits(10)], dtype=np.uint64),
        dhash=np.array([0, bits(7), 0, bits(4)], dtype=np.uint64),
    )
    candidates = Pairs(np.array([1, 3]), np.array([2, 4]), np.array([10, 10]))

    default = confirm_pairs(hashes, candidates, DedupParams())
    dhash_only = confirm_pairs(hashes, candidates, DedupParams(joint_radius=None, dhash_radius=6))
    unconfirmed = confirm_pairs(hashes, candidates, DedupParams(joint_radius=None))

    assert list(zip(default.i.tolist(), default.j.tolist(), strict=True)) == [(3, 4)]
    assert list(zip(dhash_only.i.tolist(), dhash_only.j.tolist(), strict=True)) == [(3, 4)]
    assert len(unconfirmed) == 2


def _hash_image(img: Image.Image):
    return compute_hashes(img)


@pytest.mark.skipif(not KODAK.is_dir(), reason="needs the sample corpus")
def test_mirror_dhash_predicts_the_mirrored_image() -> None:
    with Image.open(KODAK / "kodim05.png") as img:
        img.load()
        original = _hash_image(img)
        mirrored = _hash_image(ImageOps.mirror(img))
    predicted = int(mirror_dhash(np.array([original.dhash], dtype=np.uint64))[0])

    assert hamming(predicted, mirrored.dhash) <= 4
    assert hamming(original.dhash, mirrored.dhash) > 16
    assert int(mirror_dhash(mirror_dhash(np.array([original.dhash], np.uint64)))[0]) == (
        original.dhash
    )


@pytest.mark.skipif(not KODAK.is_dir(), reason="needs the sample corpus")
def test_mirrored_copies_match_only_when_flip_is_on() -> None:
    with Image.open(KODAK / "kodim05.png") as img, Image.open(KODAK / "kodim06.png") as other:
        found = [_hash_image(img), _hash_image(ImageOps.mirror(img)), _hash_image(other)]
    hashes = ImageHashes.from_hashes([1, 2, 3], found)

    flip_on = find_pairs(hashes, DedupParams())
    flip_off = find_pairs(hashes, DedupParams(flip=False))

    assert list(zip(flip_on.i.tolist(), flip_on.j.tolist(), strict=True)) == [(1, 2)]
    assert len(flip_off) == 0


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_incremental_pairs_equal_full_recompute(seed: int) -> None:
    hashes = _random_hashes(seed, 300)
    params = DedupParams(radius=8, joint_radius=12)
    old = hashes.ids[:240]
    new = hashes.ids[240:]

    index = HashIndex.build(old, hashes.phash[:240], gpu=False)
    before = find_pairs(hashes.subset(np.arange(240)), params, index=index)
    added = find_new_pairs(index, hashes, new, params)
    full = find_pairs(hashes, params)

    combined = Pairs.concat([before, added]).canonical()
    combined_set = set(zip(combined.i.tolist(), combined.j.tolist(), strict=True))
    assert combined_set == set(zip(full.i.tolist(), full.j.tolist(), strict=True))
    assert len(index) == 300


def _plan(values: list[int], group_of: list[int], reps: dict[int, int], rank: list[int]):
    hashes = _hashes(values)
    pairs = find_pairs(hashes, PHASH_ONLY)
    return hashes, pairs, plan_merges(hashes, group_of, reps, pairs, rank, PHASH_ONLY)


def test_new_image_matching_both_representatives_bridges_the_groups() -> None:
    # Groups {1,2} (rep 1) and {3,4} (rep 3): reps 16 apart, never linked before.
    # New image 5 is 8 from both representatives.
    values = [0, bits(1), bits(16), bits(16) ^ bits(1, 40), bits(8)]
    group_of = [10, 10, 20, 20, -1]
    hashes, pairs, plan = _plan(values, group_of, {10: 1, 20: 3}, rank=[1, 2, 0, 3, 4])

    assert len(plan.merges) == 1
    assert plan.merges[0].target == 20
    assert plan.merges[0].absorbed == (10,)
    assert plan.merges[0].joined.tolist() == [5]
    assert plan.refused_bridges == ()
    after = plan.apply(hashes.ids, group_of, next_id=30)
    assert after.tolist() == [20, 20, 20, 20, 20]

    again = plan_merges(hashes, after, {20: 3}, pairs, [1, 2, 0, 3, 4], PHASH_ONLY)
    assert again.is_empty()


def test_link_through_a_non_representative_member_is_refused() -> None:
    # New image 5 matches rep 1 (6 apart) but only member 4 of group 20, not its rep 3.
    values = [0, bits(2), bits(20), bits(12), bits(6), bits(30, 34)]
    group_of = [10, 10, 20, 20, -1, -1]
    hashes, pairs, plan = _plan(values, group_of, {10: 1, 20: 3}, rank=[0, 1, 2, 3, 4, 5])

    assert plan.refused_bridges == ((10, 20),)
    assert [(m.target, m.absorbed, m.joined.tolist()) for m in plan.merges] == [(10, (), [5])]
    assert plan.new_groups == ()
    after = plan.apply(hashes.ids, group_of, next_id=30)
    assert after.tolist() == [10, 10, 20, 20, 10, -1]
    assert plan_merges(hashes, after, {10: 1, 20: 3}, pairs, range(6), PHASH_ONLY).is_empty()


def test_directly_linked_groups_merge_when_their_representatives_match() -> None:
    values = [0, bits(20, 40), bits(8), bits(8) ^ bits(20, 40)]
    group_of = [10, 10, 20, 20]
    _, _, plan = _plan(values, group_of, {10: 1, 20: 3}, rank=[0, 1, 2, 3])

    assert [(m.target, m.absorbed, m.joined.tolist()) for m in plan.merges] == [(10, (20,), [])]


def test_loose_images_form_new_guarded_groups() -> None:
    values = [bits(20, 40), bits(20, 40) ^ 1, 0, bits(4), bits(8), bits(12)]
    group_of = [10, 10, -1, -1, -1, -1]
    hashes, _, plan = _plan(values, group_of, {10: 1}, rank=[0, 1, 2, 3, 4, 5])

    assert plan.merges == ()
    assert [g.tolist() for g in plan.new_groups] == [[3, 4, 5]]
    after = plan.apply(hashes.ids, group_of, next_id=30)
    assert after.tolist() == [10, 10, 30, 30, 30, -1]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_incremental_merges_never_split_an_existing_group(seed: int) -> None:
    rng = np.random.default_rng(seed)
    hashes = _random_hashes(seed, 150)
    params = DedupParams(radius=8, joint_radius=None)
    rank = rng.permutation(150)
    old = np.arange(100)
    existing = group_pairs(hashes.subset(old), find_pairs(hashes.subset(old), params), rank[old])
    group_of = np.concatenate([existing.labels, np.full(50, -1)])
    reps = {label: int(rep) for label, rep in enumerate(existing.representatives)}
    pairs = find_pairs(hashes, params)

    plan = plan_merges(hashes, group_of, reps, pairs, rank, params)
    after = plan.apply(hashes.ids, group_of, next_id=len(reps))

    for label in range(len(reps)):
        assert np.unique(after[group_of == label]).shape[0] == 1
    assert (after[:100][group_of[:100] >= 0] >= 0).all()
    merged_reps = {**reps, **{len(reps) + k: int(g[0]) for k, g in enumerate(plan.new_groups)}}
    for merge in plan.merges:
        for gone in merge.absorbed:
            merged_reps.pop(gone)
    assert plan_merges(hashes, after, merged_reps, pairs, rank, params).is_empty()


def test_oversize_groups_are_reported() -> None:
    hashes = _hashes([5, 5, 5, bits(30, 30)])
    pairs = find_pairs(hashes, PHASH_ONLY)

    grouping = group_pairs(hashes, pairs, [0, 1, 2, 3], DedupParams(max_group_size=2))

    assert grouping.report.oversize_groups == ((1, 3),)
    assert [g.tolist() for g in grouping.groups()] == [[1, 2, 3]]


def test_an_empty_catalog_groups_to_nothing() -> None:
    """A dedup run on a catalog with no hashed images finds no pairs and no groups."""
    empty = _hashes([])
    pairs = find_pairs(empty, DedupParams())
    grouping = group_pairs(empty, pairs, representative_rank([], [], []))
    assert len(pairs) == 0
    assert len(grouping.ids) == 0
