"""Where a model version's embeddings live, beside the catalog.

Under ``<data dir>/embeddings/<name>/v<version>-<sha>/``: each scored batch first writes its
vectors as a small shard file (atomically), then commits its predictions. At the end of a job
the shards are compacted into ``embeddings.npz`` (raw vectors keyed by image id) and the
``EmbeddingIndex`` file (``index.npz`` + sidecar, normalised, for similarity search) is
rebuilt from it. The database decides what counts: compaction keeps only images that have a
committed prediction.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from dataops.config import get_settings
from dataops.scoring.models import ModelVersion

if TYPE_CHECKING:
    from dataops.dedup.index import EmbeddingIndex

log = logging.getLogger(__name__)

Ids = NDArray[np.int64]
Vectors = NDArray[np.float32]


def _data_root() -> Path:
    return get_settings().resolved_data_dir / "embeddings"


class EmbeddingStore:
    """The embeddings one model version produced, keyed by image id (see the module docstring).

    Files: ``embeddings.npz`` (compacted ids + raw float32 vectors), ``shards/*.npz`` (one per
    scored batch since the last compaction; later shards win), ``index.npz`` + ``index.npz.json``
    (the ``EmbeddingIndex`` of the compacted set). A lock file serialises compactions and keeps
    readers from seeing a shard vanish under them.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base_path = root / "embeddings.npz"
        self.shard_dir = root / "shards"
        self.index_path = root / "index.npz"

    @classmethod
    def of(cls, mv: ModelVersion) -> EmbeddingStore:
        return cls(_data_root() / mv.name / f"v{mv.version}-{mv.sha256[:12]}")

    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @staticmethod
    def _write(path: Path, ids: NDArray[Any], vectors: NDArray[Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=ids.astype(np.int64), vectors=vectors.astype(np.float32))
        os.replace(tmp, path)

    @staticmethod
    def _load(path: Path) -> tuple[NDArray[Any], NDArray[Any]] | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                ids, vectors = data["ids"], data["vectors"]
        except (OSError, ValueError, KeyError, EOFError) as exc:
            log.warning("ignoring unreadable embeddings file %s: %s", path, exc)
            return None
        if ids.ndim != 1 or vectors.ndim != 2 or len(ids) != len(vectors):
            log.warning("ignoring malformed embeddings file %s", path)
            return None
        return ids, vectors

    def append(self, ids: Sequence[int] | NDArray[np.integer[Any]], vectors: NDArray[Any]) -> None:
        """Write one batch's vectors as a new shard, before its predictions commit."""
        if len(ids) == 0:
            return
        name = f"{time.time_ns():020d}-{os.getpid()}.npz"
        self._write(self.shard_dir / name, np.asarray(ids, dtype=np.int64), vectors)

    def _read_unlocked(self) -> tuple[Ids, Vectors, list[Path]]:
        parts: list[tuple[NDArray[Any], NDArray[Any]]] = []
        if self.base_path.exists() and (base := self._load(self.base_path)) is not None:
            parts.append(base)
        shards = sorted(self.shard_dir.glob("*.npz")) if self.shard_dir.exists() else []
        for shard in shards:
            if (loaded := self._load(shard)) is not None:
                parts.append(loaded)
        dims = {v.shape[1] for _, v in parts}
        if not parts or len(dims) > 1:
            if len(dims) > 1:
                log.warning("embeddings under %s disagree on dimensions; rebuilding", self.root)
            return np.empty(0, np.int64), np.empty((0, 0), np.float32), shards
        ids = np.concatenate([i for i, _ in parts]).astype(np.int64)
        vectors = np.concatenate([v for _, v in parts]).astype(np.float32)
        # Later files win: keep the last occurrence of every id, sorted by id.
        _, last = np.unique(ids[::-1], return_index=True)
        keep = len(ids) - 1 - last
        return ids[keep], vectors[keep], shards

    def read(self) -> tuple[Ids, Vectors]:
        """(ids sorted, vectors) of every stored embedding."""
        with self._locked(exclusive=False):
            ids, vectors, _ = self._read_unlocked()
        return ids, vectors

    def vectors_for(self, image_ids: NDArray[np.integer[Any]]) -> tuple[Vectors, NDArray[np.bool_]]:
        """Vectors for the given ids (zeros where missing) and the mask of the missing ones."""
        ids, vectors = self.read()
        wanted = np.asarray(image_ids, dtype=np.int64)
        if len(ids) == 0:
            return np.zeros((len(wanted), 0), np.float32), np.ones(len(wanted), dtype=bool)
        pos = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
        found = ids[pos] == wanted
        out = np.where(found[:, None], vectors[pos], np.float32(0)).astype(np.float32)
        return out, ~found

    def compact(self, keep_ids: NDArray[np.integer[Any]]) -> int:
        """Fold shards into the base, keep only ``keep_ids`` and rebuild the index file."""
        from dataops.dedup.index import EmbeddingIndex, sidecar_path

        with self._locked(exclusive=True):
            ids, vectors, shards = self._read_unlocked()
            mask = np.isin(ids, keep_ids)
            ids, vectors = ids[mask], vectors[mask]
            self._write(self.base_path, ids, vectors)
            if len(ids):
                EmbeddingIndex.build(ids, vectors).save(self.index_path)
            else:
                self.index_path.unlink(missing_ok=True)
                sidecar_path(self.index_path).unlink(missing_ok=True)
            for shard in shards:
                shard.unlink(missing_ok=True)
        return len(ids)

    def index(self) -> EmbeddingIndex:
        """The similarity index of the compacted embeddings."""
        from dataops.dedup.index import EmbeddingIndex

        return EmbeddingIndex.load(self.index_path)
