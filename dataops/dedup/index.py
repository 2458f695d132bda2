"""FAISS indexes over perceptual hashes and embeddings, keyed by image id.

Why flat (exhaustive) binary indexes: faiss compares 64-bit codes at about a billion pairs
a second per core, and the search is exact. ``IndexBinaryMultiHash`` was slower at every size
we measured. What makes 1M images affordable is pigeonhole bucketing on top of the flat
search: cut the 64 bits into ``radius + 1`` blocks; two codes within ``radius`` agree exactly
on at least one block, so each block's buckets (codes sharing that block's value) are
searched flat among themselves, about a fifth of the all-pairs work at radius 10. Real
pHashes are skewed and faiss pays a fixed cost per query, so the bucket sizes are checked
first and the search stays one flat pass when bucketing would not save a fifth of it.

Persistence writes the ids and codes themselves (the flat index is rebuilt from them with
one memcpy) plus a JSON sidecar with the count and an order-independent checksum. After a
crash the caller compares the sidecar with the catalog and rebuilds on any difference.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dataops.catalog.hashing import to_codes
from dataops.dedup.range_search import (
    DEFAULT_CHUNK,
    HASH_BITS,
    bucketed_search,
    gpu_available,
    hit_rows,
    range_via_knn,
)

CODE_BYTES = HASH_BITS // 8
_GPU_K = 256
_SIDECAR_VERSION = 1


class IndexMismatchError(RuntimeError):
    """An index file does not match its sidecar (torn write) or the catalog: rebuild it."""


@dataclass(frozen=True, slots=True)
class Pairs:
    """Matched id pairs with their distance (Hamming) or similarity (cosine)."""

    i: np.ndarray
    j: np.ndarray
    dist: np.ndarray

    def __len__(self) -> int:
        return int(self.i.shape[0])

    @classmethod
    def empty(cls, dist_dtype: Any = np.int32) -> Pairs:
        """No pairs."""
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, dist_dtype))

    @classmethod
    def concat(cls, parts: list[Pairs], dist_dtype: Any = np.int32) -> Pairs:
        """Join pair sets, e.g. one per query chunk."""
        if not parts:
            return cls.empty(dist_dtype)
        return cls(
            np.concatenate([p.i for p in parts]).astype(np.int64, copy=False),
            np.concatenate([p.j for p in parts]).astype(np.int64, copy=False),
            np.concatenate([p.dist for p in parts]).astype(dist_dtype, copy=False),
        )

    def canonical(self) -> Pairs:
        """Order each pair as i < j and sort, so equal pair sets compare equal."""
        lo = np.minimum(self.i, self.j)
        hi = np.maximum(self.i, self.j)
        order = np.lexsort((hi, lo))
        return Pairs(lo[order], hi[order], self.dist[order])


@dataclass(frozen=True, slots=True)
class Sidecar:
    """What an index file claims to hold: compare with the catalog before trusting it."""

    count: int
    checksum: str


def as_codes(values: np.ndarray | list[int]) -> np.ndarray:
    """Hashes as FAISS binary codes: accepts (n, 8) uint8 codes or n 64-bit ints (any sign)."""
    if isinstance(values, np.ndarray) and values.ndim == 2:
        if values.shape[1] != CODE_BYTES or values.dtype != np.uint8:
            raise ValueError(f"codes must be (n, {CODE_BYTES}) uint8, got {values.shape}")
        return np.ascontiguousarray(values)
    return np.ascontiguousarray(to_codes(values))


def _as_ids(ids: np.ndarray | list[int], n: int) -> np.ndarray:
    arr = np.asarray(ids, dtype=np.int64).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{arr.shape[0]} ids for {n} vectors")
    if np.unique(arr).shape[0] != n:
        raise ValueError("ids must be unique")
    return arr


def fingerprint(ids: np.ndarray, payload: np.ndarray) -> str:
    """Checksum of (id, row) pairs that ignores row order, so a catalog query can reproduce it."""
    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(ids[order]).tobytes())
    digest.update(np.ascontiguousarray(payload[order]).tobytes())
    return "sha256:" + digest.hexdigest()


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where the sidecar of an index file lives."""
    p = Path(path)
    return p.with_name(p.name + ".json")


def read_sidecar(path: str | os.PathLike[str]) -> Sidecar | None:
    """The sidecar of an index file, or None when it is missing or unreadable."""
    try:
        data = json.loads(sidecar_path(path).read_text())
        return Sidecar(count=int(data["count"]), checksum=str(data["checksum"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save_arrays(
    path: str | os.PathLike[str], kind: str, ids: np.ndarray, rows: np.ndarray
) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, ids=ids, rows=rows)
    os.replace(tmp, p)
    meta = {
        "version": _SIDECAR_VERSION,
        "kind": kind,
        "count": int(ids.shape[0]),
        "checksum": fingerprint(ids, rows),
    }
    side = sidecar_path(p)
    side_tmp = side.with_name(side.name + ".tmp")
    side_tmp.write_text(json.dumps(meta, sort_keys=True))
    os.replace(side_tmp, side)


def _load_arrays(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    meta = read_sidecar(path)
    if meta is None:
        raise IndexMismatchError(f"{path}: sidecar missing or unreadable")
    try:
        with np.load(path, allow_pickle=False) as data:
            ids, rows = data["ids"], data["rows"]
    except (OSError, ValueError, KeyError) as exc:
        raise IndexMismatchError(f"{path}: unreadable index file ({exc})") from exc
    if ids.shape[0] != meta.count or fingerprint(ids, rows) != meta.checksum:
        raise IndexMismatchError(f"{path}: contents do not match the sidecar")
    return ids, rows


class _IdIndex:
    """What both indexes share: the catalog ids of the rows, in insertion order."""

    _ids: np.ndarray

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    @property
    def ids(self) -> np.ndarray:
        """Indexed ids, in insertion order (read-only view)."""
        view = self._ids.view()
        view.flags.writeable = False
        return view


class HashIndex(_IdIndex):
    """Exact Hamming search over 64-bit perceptual hashes, returning image ids."""

    def __init__(self, *, gpu: bool | None = None) -> None:
        """``gpu=None`` uses a GPU when faiss can; ``False`` forces the CPU."""
        import faiss

        self._ids = np.empty(0, np.int64)
        self._codes = np.empty((0, CODE_BYTES), np.uint8)
        self._cpu = faiss.IndexBinaryFlat(HASH_BITS)
        self._gpu: Any = None
        if gpu is None:
            gpu = gpu_available()
        if gpu:
            # Keep the resources referenced for as long as the index that uses them.
            self._gpu_resources = faiss.StandardGpuResources()
            self._gpu = faiss.GpuIndexBinaryFlat(self._gpu_resources, HASH_BITS)

    @classmethod
    def build(
        cls,
        ids: np.ndarray | list[int],
        codes: np.ndarray | list[int],
        *,
        gpu: bool | None = None,
    ) -> HashIndex:
        """Index ``codes`` (see :func:`as_codes`) under ``ids``."""
        index = cls(gpu=gpu)
        index.add(ids, codes)
        return index

    @property
    def codes(self) -> np.ndarray:
        """Indexed codes, aligned with :attr:`ids` (read-only view)."""
        view = self._codes.view()
        view.flags.writeable = False
        return view

    @property
    def uses_gpu(self) -> bool:
        """Whether searches run on a GPU."""
        return self._gpu is not None

    def add(self, ids: np.ndarray | list[int], codes: np.ndarray | list[int]) -> None:
        """Append codes; ids must be new, so a re-run cannot double an image."""
        code_arr = as_codes(codes)
        id_arr = _as_ids(ids, code_arr.shape[0])
        if id_arr.size == 0:
            return
        if len(self) and np.isin(id_arr, self._ids).any():
            raise ValueError("some ids are already indexed")
        self._cpu.add(code_arr)
        if self._gpu is not None:
            self._gpu.add(code_arr)
        self._ids = np.concatenate([self._ids, id_arr])
        self._codes = np.concatenate([self._codes, code_arr])

    def fingerprint(self) -> str:
        """Checksum of the indexed (id, code) set, as written to the sidecar."""
        return fingerprint(self._ids, self._codes)

    def matches(self, ids: np.ndarray | list[int], codes: np.ndarray | list[int]) -> bool:
        """Whether the index holds exactly these (id, code) rows, in any order."""
        code_arr = as_codes(codes)
        id_arr = np.asarray(ids, dtype=np.int64)
        return id_arr.shape[0] == len(self) and fingerprint(id_arr, code_arr) == self.fingerprint()

    def _gpu_search(
        self, queries: np.ndarray, radius: int, chunk_size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query row, index position, distance) of every hit, in bounded GPU batches."""
        parts = []
        for start in range(0, queries.shape[0], chunk_size):
            rows, pos, dist = range_via_knn(
                self._gpu, self._cpu, queries[start : start + chunk_size], radius, _GPU_K
            )
            parts.append((rows + start, pos, dist))
        if not parts:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int32)
        rows, pos, dist = zip(*parts, strict=True)
        return np.concatenate(rows), np.concatenate(pos), np.concatenate(dist)

    def _earlier_hits(self, queries: np.ndarray, radius: int, chunk_size: int) -> Pairs:
        """Pairs (id of query row k, id of an indexed code positioned before k) within radius.

        ``queries`` are aligned with the index (row k belongs to the image at position k).
        """
        n = len(self)
        pos = np.arange(n, dtype=np.int64)
        if self._gpu is not None:
            rows, cols, dist = self._gpu_search(queries, radius, chunk_size)
            keep = cols < rows
            rows, cols, dist = rows[keep], cols[keep], dist[keep]
        else:
            rows, cols, dist = bucketed_search(
                queries, pos, self._codes, pos, radius, earlier=True, chunk=chunk_size
            )
        return Pairs(self._ids[rows], self._ids[cols], dist)

    def range_pairs(self, radius: int, *, chunk_size: int = DEFAULT_CHUNK) -> Pairs:
        """Every indexed pair at Hamming ≤ radius, once, with i < j.

        Each code is compared only with codes indexed before it, in chunks so memory stays
        bounded by the hits of one chunk; faiss spreads each chunk over its OpenMP threads.
        """
        return self._earlier_hits(self._codes, radius, chunk_size).canonical()

    def mirror_pairs(
        self, codes: np.ndarray | list[int], radius: int, *, chunk_size: int = DEFAULT_CHUNK
    ) -> Pairs:
        """Pairs where the mirrored code of an image is within radius of an earlier image.

        ``codes`` are the mirrored hashes, aligned with the index. Mirroring ``a`` to meet
        ``b`` and mirroring ``b`` to meet ``a`` compare the same two pictures, so one
        orientation per pair is searched: the later image mirrored (the one an incremental
        run adds), against everything indexed before it. ``i`` is the mirrored image's id.
        """
        queries = as_codes(codes)
        if queries.shape[0] != len(self):
            raise ValueError(f"{queries.shape[0]} mirrored codes for {len(self)} indexed")
        return self._earlier_hits(queries, radius, chunk_size)

    def query(
        self,
        codes: np.ndarray | list[int],
        radius: int,
        *,
        ids: np.ndarray | list[int] | None = None,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> Pairs:
        """Indexed codes within ``radius`` of each query, searched in bounded chunks.

        ``i`` is the query's id (its row number when ``ids`` is None), ``j`` the indexed id.
        """
        queries = as_codes(codes)
        qids = (
            np.arange(queries.shape[0], dtype=np.int64)
            if ids is None
            else np.asarray(ids, dtype=np.int64).reshape(-1)
        )
        if qids.shape[0] != queries.shape[0]:
            raise ValueError(f"{qids.shape[0]} ids for {queries.shape[0]} queries")
        if len(self) == 0 or queries.shape[0] == 0:
            return Pairs.empty()
        if self._gpu is not None:
            rows, pos, dist = self._gpu_search(queries, radius, chunk_size)
        else:
            no_pos = np.zeros(queries.shape[0], np.int64)
            rows, pos, dist = bucketed_search(
                queries,
                no_pos,
                self._codes,
                np.arange(len(self)),
                radius,
                earlier=False,
                chunk=chunk_size,
            )
        return Pairs(qids[rows], self._ids[pos], dist)

    def add_and_pair(
        self, ids: np.ndarray | list[int], codes: np.ndarray | list[int], radius: int
    ) -> Pairs:
        """Add new codes and return every pair they take part in (new-old and new-new).

        The union with the previous :meth:`range_pairs` equals a full recompute, at the cost
        of one query pass instead of all pairs.
        """
        code_arr = as_codes(codes)
        id_arr = _as_ids(ids, code_arr.shape[0])
        against_old = self.query(code_arr, radius, ids=id_arr)
        among_new = HashIndex.build(id_arr, code_arr, gpu=False).range_pairs(radius)
        self.add(id_arr, code_arr)
        return Pairs.concat([against_old, among_new]).canonical()

    def save(self, path: str | os.PathLike[str]) -> Sidecar:
        """Write ids and codes, then the sidecar; each file is replaced atomically."""
        _save_arrays(path, "phash", self._ids, self._codes)
        return Sidecar(count=len(self), checksum=self.fingerprint())

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, gpu: bool | None = None) -> HashIndex:
        """Read an index; raises :class:`IndexMismatchError` when it disagrees with its sidecar."""
        ids, codes = _load_arrays(path)
        if codes.ndim != 2 or codes.shape[1] != CODE_BYTES or codes.dtype != np.uint8:
            raise IndexMismatchError(f"{path}: not a 64-bit hash index")
        return cls.build(ids, codes, gpu=gpu)


def _normalised(vectors: np.ndarray, dim: int) -> np.ndarray:
    import faiss

    arr = np.array(vectors, dtype=np.float32, copy=True, order="C")
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"vectors must be (n, {dim}), got {arr.shape}")
    faiss.normalize_L2(arr)
    return arr


class EmbeddingIndex(_IdIndex):
    """Cosine-similarity search over model embeddings, returning image ids.

    Vectors are L2-normalised on the way in, so inner product is cosine similarity.
    """

    def __init__(self, dim: int) -> None:
        import faiss

        self.dim = dim
        self._ids = np.empty(0, np.int64)
        self._index = faiss.IndexFlatIP(dim)

    @classmethod
    def build(cls, ids: np.ndarray | list[int], vectors: np.ndarray) -> EmbeddingIndex:
        """Index ``vectors`` (n, dim) under ``ids``."""
        arr = np.asarray(vectors)
        index = cls(int(arr.shape[1]))
        index.add(ids, arr)
        return index

    def _vectors(self) -> np.ndarray:
        """The stored (normalised) vectors, viewed in place: embeddings are too big to copy."""
        import faiss

        if len(self) == 0:
            return np.empty((0, self.dim), np.float32)
        flat = faiss.rev_swig_ptr(self._index.get_xb(), len(self) * self.dim)
        return flat.reshape(len(self), self.dim)

    def add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None:
        """Append vectors; ids must be new."""
        self._add_normalised(ids, _normalised(vectors, self.dim))

    def _add_normalised(self, ids: np.ndarray | list[int], arr: np.ndarray) -> None:
        id_arr = _as_ids(ids, arr.shape[0])
        if id_arr.size == 0:
            return
        if len(self) and np.isin(id_arr, self._ids).any():
            raise ValueError("some ids are already indexed")
        self._index.add(arr)
        self._ids = np.concatenate([self._ids, id_arr])

    def fingerprint(self) -> str:
        """Checksum of the indexed (id, vector) set, as written to the sidecar."""
        return fingerprint(self._ids, self._vectors())

    def _search(self, queries: np.ndarray, threshold: float) -> tuple[np.ndarray, ...]:
        # faiss keeps inner-product hits strictly above the radius; step one ulp down for ≥.
        radius = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))
        lims, sims, labels = self._index.range_search(queries, radius)
        rows = hit_rows(lims)
        return rows, labels.astype(np.int64), sims.astype(np.float32)

    def range_pairs(self, threshold: float, *, chunk_size: int = DEFAULT_CHUNK) -> Pairs:
        """Every indexed pair with cosine ≥ threshold, once, with i < j; ``dist`` is the cosine."""
        n = len(self)
        vectors = self._vectors()
        parts: list[Pairs] = []
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            rows, pos, sims = self._search(vectors[start:stop], threshold)
            rows = rows + start
            keep = pos > rows
            parts.append(Pairs(self._ids[rows[keep]], self._ids[pos[keep]], sims[keep]))
        return Pairs.concat(parts, np.float32).canonical()

    def query(
        self, vectors: np.ndarray, threshold: float, *, ids: np.ndarray | list[int] | None = None
    ) -> Pairs:
        """Indexed vectors with cosine ≥ threshold to each query (``i`` = query id or row)."""
        queries = _normalised(vectors, self.dim)
        qids = (
            np.arange(queries.shape[0], dtype=np.int64)
            if ids is None
            else np.asarray(ids, dtype=np.int64).reshape(-1)
        )
        if qids.shape[0] != queries.shape[0]:
            raise ValueError(f"{qids.shape[0]} ids for {queries.shape[0]} queries")
        if len(self) == 0 or queries.shape[0] == 0:
            return Pairs.empty(np.float32)
        rows, pos, sims = self._search(queries, threshold)
        return Pairs(qids[rows], self._ids[pos], sims)

    def save(self, path: str | os.PathLike[str]) -> Sidecar:
        """Write ids and normalised vectors, then the sidecar; each replaced atomically."""
        _save_arrays(path, "embedding", self._ids, self._vectors())
        return Sidecar(count=len(self), checksum=self.fingerprint())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EmbeddingIndex:
        """Read an index; raises :class:`IndexMismatchError` when it disagrees with its sidecar."""
        ids, vectors = _load_arrays(path)
        if vectors.ndim != 2 or vectors.dtype != np.float32:
            raise IndexMismatchError(f"{path}: not an embedding index")
        index = cls(int(vectors.shape[1]))
        # Stored vectors are already normalised; re-normalising could move the last bit.
        index._add_normalised(ids, np.ascontiguousarray(vectors))
        return index
