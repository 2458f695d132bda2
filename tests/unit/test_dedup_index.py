"""HashIndex / EmbeddingIndex: exact radius semantics, ids, persistence, incremental search."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataops.catalog.hashing import to_codes, to_signed64
from dataops.dedup import range_search
from dataops.dedup.index import (
    EmbeddingIndex,
    HashIndex,
    IndexMismatchError,
    Pairs,
    as_codes,
    read_sidecar,
    sidecar_path,
)
from dataops.dedup.range_search import BucketCost, bucket_plan, range_via_knn


def _with_bits(base: int, count: int, offset: int = 0) -> int:
    """``base`` with ``count`` distinct bits flipped."""
    value = base
    for bit in range(offset, offset + count):
        value ^= 1 << bit
    return value


def _clustered(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random 64-bit values where about half sit a few bits from a cluster centre."""
    centres = rng.integers(0, 2**63, size=max(1, n // 8), dtype=np.uint64)
    values = rng.integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2)
    near = rng.random(n) < 0.5
    picks = centres[rng.integers(0, centres.shape[0], size=n)]
    noise = np.zeros(n, dtype=np.uint64)
    for _ in range(6):
        noise ^= np.uint64(1) << rng.integers(0, 64, size=n, dtype=np.uint64)
    values[near] = picks[near] ^ noise[near]
    return values


def _brute_pairs(ids: np.ndarray, values: np.ndarray, radius: int) -> set[tuple[int, int, int]]:
    dist = np.bitwise_count(values[:, None] ^ values[None, :])
    a, b = np.nonzero(np.triu(dist <= radius, k=1))
    return {
        (int(min(ids[x], ids[y])), int(max(ids[x], ids[y])), int(dist[x, y]))
        for x, y in zip(a, b, strict=True)
    }


def _as_set(pairs: Pairs) -> set[tuple[int, int, int]]:
    return set(zip(pairs.i.tolist(), pairs.j.tolist(), pairs.dist.tolist(), strict=True))


def test_radius_is_inclusive_and_exact() -> None:
    base = 0x0123_4567_89AB_CDEF
    values = [base, _with_bits(base, 10), _with_bits(base, 11, offset=20)]
    index = HashIndex.build([7, 8, 9], values, gpu=False)

    pairs = index.range_pairs(10)

    assert _as_set(pairs) == {(7, 8, 10)}
    assert _as_set(index.range_pairs(11)) == {(7, 8, 10), (7, 9, 11)}
    assert len(index.range_pairs(9)) == 0


def test_ids_are_preserved_and_pairs_ordered() -> None:
    values = [1, 1, 3, 2**63 + 1]
    ids = [900, -5, 42, 10**12]
    index = HashIndex.build(ids, values, gpu=False)

    pairs = index.range_pairs(1)

    assert (pairs.i < pairs.j).all()
    assert _as_set(pairs) == {
        (-5, 900, 0),
        (42, 900, 1),
        (-5, 42, 1),
        (900, 10**12, 1),
        (-5, 10**12, 1),
    }
    np.testing.assert_array_equal(index.ids, ids)


def test_signed_and_unsigned_hashes_index_alike() -> None:
    values = [2**64 - 1, 2**63, 5]
    unsigned = HashIndex.build([1, 2, 3], np.array(values, dtype=np.uint64), gpu=False)
    signed = HashIndex.build(
        [1, 2, 3], np.array([to_signed64(v) for v in values], dtype=np.int64), gpu=False
    )
    np.testing.assert_array_equal(unsigned.codes, signed.codes)
    np.testing.assert_array_equal(unsigned.codes, to_codes(values))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(min_value=0, max_value=300),
    radius=st.integers(min_value=0, max_value=12),
    chunk=st.integers(min_value=1, max_value=64),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_range_pairs_matches_brute_force(n: int, radius: int, chunk: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = _clustered(rng, n)
    ids = rng.permutation(10 * n + 1)[:n].astype(np.int64) - 3 * n
    index = HashIndex.build(ids, values, gpu=False)

    assert _as_set(index.range_pairs(radius, chunk_size=chunk)) == _brute_pairs(ids, values, radius)


def test_query_matches_brute_force_and_reports_query_ids() -> None:
    rng = np.random.default_rng(3)
    stored = _clustered(rng, 400)
    queries = np.concatenate([stored[:50] ^ np.uint64(0b111), _clustered(rng, 50)])
    index = HashIndex.build(np.arange(400) + 1000, stored, gpu=False)

    pairs = index.query(queries, 8, ids=np.arange(100) + 5000, chunk_size=7)

    dist = np.bitwise_count(queries[:, None] ^ stored[None, :])
    qa, sb = np.nonzero(dist <= 8)
    expected = {
        (int(q) + 5000, int(s) + 1000, int(dist[q, s])) for q, s in zip(qa, sb, strict=True)
    }
    assert _as_set(pairs) == expected
    assert len(expected) >= 50


@settings(max_examples=8, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=200),
    radius=st.integers(min_value=0, max_value=12),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_pigeonhole_buckets_find_exactly_the_flat_pairs(n: int, radius: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = _clustered(rng, n)
    mirrored = np.where(rng.random(n) < 0.5, values[rng.permutation(n)], _clustered(rng, n))
    mirrored ^= np.uint64(1) << rng.integers(0, 64, size=n, dtype=np.uint64)
    ids = rng.permutation(10 * n)[:n].astype(np.int64)
    dist = np.bitwise_count(mirrored[:, None] ^ values[None, :])
    rows, cols = np.nonzero(dist <= radius)
    hits = {(int(ids[r]), int(ids[c]), int(dist[r, c])) for r, c in zip(rows, cols, strict=True)}
    earlier = {
        (int(ids[r]), int(ids[c]), int(dist[r, c]))
        for r, c in zip(rows, cols, strict=True)
        if c < r
    }

    # Force bucketing at any size, so small inputs take the path large catalogs take.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            range_search,
            "COST",
            BucketCost(flat_work=0, bucket_share=1.0, query_overhead=0, min_chunk=16),
        )
        index = HashIndex.build(ids, values, gpu=False)
        assert _as_set(index.range_pairs(radius)) == _brute_pairs(ids, values, radius)
        assert _as_set(index.query(mirrored, radius, ids=ids)) == hits
        assert _as_set(index.mirror_pairs(mirrored, radius)) == earlier


def test_skewed_codes_fall_back_to_one_flat_pass() -> None:
    eager = BucketCost(flat_work=0, query_overhead=0)
    # Every code shares its low 48 bits: every block but the top ones is one bucket.
    values = np.arange(300, dtype=np.uint64) << np.uint64(48)
    codes = as_codes(values)
    assert bucket_plan(codes, codes, 4, earlier=True, cost=eager) is None, (
        "buckets would cost as much as one flat pass"
    )
    spread = as_codes(np.random.default_rng(3).integers(0, 2**63, 300, dtype=np.uint64))
    assert bucket_plan(spread, spread, 4, earlier=True, cost=eager)

    index = HashIndex.build(np.arange(300), values, gpu=False)
    assert _as_set(index.range_pairs(4)) == _brute_pairs(np.arange(300), values, 4)


def test_incremental_pairs_equal_full_recompute() -> None:
    rng = np.random.default_rng(11)
    values = _clustered(rng, 1200)
    ids = rng.permutation(5000)[:1200].astype(np.int64)
    full = HashIndex.build(ids, values, gpu=False).range_pairs(10)

    index = HashIndex.build(ids[:1000], values[:1000], gpu=False)
    first = index.range_pairs(10)
    added = index.add_and_pair(ids[1000:1100], values[1000:1100], 10)
    added_again = index.add_and_pair(ids[1100:], values[1100:], 10)

    combined = Pairs.concat([first, added, added_again]).canonical()
    assert _as_set(combined) == _as_set(full)
    assert len(combined) == len(full)
    assert len(index) == 1200


def test_duplicate_ids_are_rejected() -> None:
    index = HashIndex.build([1, 2], [10, 20], gpu=False)
    with pytest.raises(ValueError, match="already indexed"):
        index.add([2], [30])
    with pytest.raises(ValueError, match="unique"):
        HashIndex.build([1, 1], [10, 20], gpu=False)
    assert len(index) == 2


def test_knn_based_range_search_falls_back_when_saturated() -> None:
    """The GPU path (k-NN, then exact re-search of saturated queries) is exact."""
    rng = np.random.default_rng(5)
    values = np.concatenate([np.full(40, 12345, dtype=np.uint64), _clustered(rng, 200)])
    codes = to_codes(values)
    flat = faiss.IndexBinaryFlat(64)
    flat.add(codes)

    rows, labels, dist = range_via_knn(flat, flat, codes, 6, k=4)

    lims, d_exact, l_exact = flat.range_search(codes, 7)
    exact_rows = np.repeat(np.arange(codes.shape[0]), np.diff(lims.astype(np.int64)))
    assert set(zip(rows.tolist(), labels.tolist(), dist.tolist(), strict=True)) == set(
        zip(exact_rows.tolist(), l_exact.tolist(), d_exact.tolist(), strict=True)
    )


def test_save_load_round_trip_and_sidecar(tmp_path) -> None:
    rng = np.random.default_rng(2)
    values = _clustered(rng, 500)
    ids = np.arange(500, dtype=np.int64) * 3
    index = HashIndex.build(ids, values, gpu=False)
    path = tmp_path / "phash.index"

    sidecar = index.save(path)
    loaded = HashIndex.load(path, gpu=False)

    assert read_sidecar(path) == sidecar
    assert sidecar.count == 500
    np.testing.assert_array_equal(loaded.ids, ids)
    np.testing.assert_array_equal(loaded.codes, index.codes)
    assert _as_set(loaded.range_pairs(10)) == _as_set(index.range_pairs(10))
    # A catalog listing the same rows in another order matches; a changed one does not.
    order = rng.permutation(500)
    assert loaded.matches(ids[order], values[order])
    changed = values.copy()
    changed[7] ^= np.uint64(1)
    assert not loaded.matches(ids, changed)
    assert not loaded.matches(ids[:-1], values[:-1])


def test_load_detects_a_torn_or_stale_index(tmp_path) -> None:
    path = tmp_path / "phash.index"
    HashIndex.build([1, 2, 3], [1, 2, 3], gpu=False).save(path)
    good_sidecar = sidecar_path(path).read_text()
    # The index file was replaced after the sidecar was written (crash between the two).
    HashIndex.build([1, 2], [1, 2], gpu=False).save(tmp_path / "other.index")
    (tmp_path / "other.index").replace(path)
    sidecar_path(path).write_text(good_sidecar)
    with pytest.raises(IndexMismatchError, match="do not match"):
        HashIndex.load(path)

    meta = json.loads(good_sidecar)
    meta["checksum"] = "sha256:" + "0" * 64
    sidecar_path(path).write_text(json.dumps(meta))
    with pytest.raises(IndexMismatchError):
        HashIndex.load(path)

    sidecar_path(path).unlink()
    assert read_sidecar(path) is None
    with pytest.raises(IndexMismatchError, match="sidecar"):
        HashIndex.load(path)


def test_embedding_threshold_is_inclusive() -> None:
    # Exactly representable unit vectors: every cosine below is exactly 0, 0.5 or 1.
    vectors = np.array(
        [[1, 0, 0, 0], [0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, -0.5], [2, 0, 0, 0], [0, 1, 0, 0]],
        dtype=np.float32,
    )
    index = EmbeddingIndex.build([1, 2, 3, 4, 5], vectors)

    at_half = index.range_pairs(0.5)
    above_half = index.range_pairs(float(np.nextafter(np.float32(0.5), np.float32(1))))

    all_pairs = {(i, j) for i in range(1, 6) for j in range(i + 1, 6)}
    assert {(i, j) for i, j, _ in _as_set(at_half)} == all_pairs - {(1, 5), (4, 5)}
    assert _as_set(above_half) == {(1, 4, 1.0)}


def test_embedding_index_matches_brute_force_and_round_trips(tmp_path) -> None:
    rng = np.random.default_rng(9)
    base = rng.normal(size=(30, 16)).astype(np.float32)
    vectors = np.concatenate([base, base + 0.05 * rng.normal(size=base.shape).astype(np.float32)])
    ids = np.arange(60, dtype=np.int64) + 100
    index = EmbeddingIndex.build(ids, vectors)

    pairs = index.range_pairs(0.95, chunk_size=7)

    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit.T
    a, b = np.nonzero(np.triu(sims >= 0.95, k=1))
    assert {(i, j) for i, j, _ in _as_set(pairs)} == {
        (int(ids[x]), int(ids[y])) for x, y in zip(a, b, strict=True)
    }
    assert len(pairs) >= 30

    path = tmp_path / "emb.index"
    index.save(path)
    loaded = EmbeddingIndex.load(path)
    assert loaded.fingerprint() == index.fingerprint()
    assert _as_set(loaded.range_pairs(0.95)) == _as_set(pairs)
    hits = loaded.query(base[:3], 0.99, ids=[1, 2, 3])
    assert {(int(i), int(j)) for i, j in zip(hits.i, hits.j, strict=True)} >= {
        (1, 100),
        (2, 101),
        (3, 102),
    }
