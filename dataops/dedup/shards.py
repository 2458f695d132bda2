"""Sharding a run's queries over workers: slices, claim files, and the shard task's body.

The new images are cut into slices; shard ``k`` pairs slice ``k`` with everything indexed
before it (the base index plus earlier slices), so the shards together give exactly the pairs
of one in-process pass. Without a broker, or for small catalogs, the shards run in the job one
after the other on one growing index. With a broker and a large catalog, the job writes the
run's inputs under ``dedup/runs/<job id>/`` (a folder every dedup worker must see, like the
index itself), sends one ``dataops.dedup.shard`` task per slice, and works on unclaimed
slices itself while it waits; a slice is claimed by creating its claim file, so a worker and
the job never both compute it, and a claim that never finishes (a killed worker) is
recomputed after ``dedup.shard_timeout``. No Celery result backend is needed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from dataops.config import get_settings
from dataops.dedup.grouping import DedupParams, ImageHashes, find_new_hits
from dataops.dedup.index import HashIndex, IndexMismatchError, Pairs
from dataops.dedup.state import index_path, runs_dir
from dataops.errors import DataopsError

SHARD_TASK = "dataops.dedup.shard"
RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

Progress = Callable[[int, int, str], None]
FanOut = Callable[[str, int], None]


def shard_bounds(count: int, shard_size: int) -> list[int]:
    """Slice boundaries over ``count`` new images, at most ``shard_size`` per slice."""
    size = max(1, shard_size)
    return [*range(0, count, size), count] if count else [0, 0]


def shard_pairs(
    index: HashIndex,
    hashes: ImageHashes,
    new_ids: np.ndarray,
    bounds: Sequence[int],
    shard: int,
    params: DedupParams,
) -> Pairs:
    """Hash-stage hits of slice ``shard`` with everything indexed before it, before
    confirmation (the job confirms them and takes the rest as geometric candidates); adds the
    slice to ``index``.

    ``index`` must hold the base images and the slices before ``shard``.
    """
    part = new_ids[bounds[shard] : bounds[shard + 1]]
    if part.size == 0:
        return Pairs.empty()
    visible = hashes.subset(hashes.positions(np.concatenate([index.ids, part])))
    return find_new_hits(index, visible, part, params)


def _pairs_file(run_dir: Path, shard: int) -> Path:
    return run_dir / f"pairs-{shard}.npz"


def _claim(run_dir: Path, shard: int) -> bool:
    try:
        fd = os.open(run_dir / f"claim-{shard}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{socket.gethostname()}:{os.getpid()}")
    return True


def _claimed_by(run_dir: Path, shard: int) -> str | None:
    try:
        return (run_dir / f"claim-{shard}").read_text()
    except OSError:
        return None


def _claim_age(run_dir: Path, shard: int) -> float:
    try:
        return time.time() - (run_dir / f"claim-{shard}").stat().st_mtime
    except OSError:
        return 0.0


def write_run(
    run_dir: Path,
    hashes: ImageHashes,
    new_ids: np.ndarray,
    bounds: list[int],
    base: HashIndex,
    params: DedupParams,
) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    assert hashes.dhash is not None
    assert hashes.phash_flip is not None
    with open(run_dir / "hashes.npz", "wb") as fh:
        np.savez(
            fh,
            ids=hashes.ids,
            phash=hashes.phash,
            dhash=hashes.dhash,
            phash_flip=hashes.phash_flip,
            new_ids=new_ids,
            bounds=np.asarray(bounds, dtype=np.int64),
        )
    plan = {
        "base_count": len(base),
        "base_checksum": base.fingerprint(),
        "index_path": str(index_path()),
        "params": {
            "radius": params.radius,
            "joint_radius": params.joint_radius,
            "dhash_radius": params.dhash_radius,
            "flip": params.flip,
            "rep_radius": params.rep_radius,
            "max_group_size": params.max_group_size,
        },
    }
    tmp = run_dir / "plan.json.tmp"
    tmp.write_text(json.dumps(plan))
    os.replace(tmp, run_dir / "plan.json")


def _shard_from_files(run_dir: Path, shard: int) -> Pairs:
    plan = json.loads((run_dir / "plan.json").read_text())
    with np.load(run_dir / "hashes.npz", allow_pickle=False) as data:
        hashes = ImageHashes(
            ids=data["ids"], phash=data["phash"], dhash=data["dhash"], phash_flip=data["phash_flip"]
        )
        new_ids = data["new_ids"]
        bounds = data["bounds"].tolist()
    if plan["base_count"]:
        index = HashIndex.load(plan["index_path"])
        if index.fingerprint() != plan["base_checksum"]:
            raise IndexMismatchError(f"{plan['index_path']} changed while shards were running")
    else:
        index = HashIndex()
    earlier = new_ids[: bounds[shard]]
    index.add(earlier, hashes.phash[hashes.positions(earlier)])
    return shard_pairs(index, hashes, new_ids, bounds, shard, DedupParams(**plan["params"]))


def run_shard(run_id: str, shard: int, *, force: bool = False) -> bool:
    """Compute one slice of a sharded run into its folder (the body of the shard task).

    Returns False when there is nothing to do: the run has finished, or another process
    claimed the slice. ``force`` skips the claim (the job recomputing a stale slice).
    """
    if not RUN_ID.match(run_id) or shard < 0:
        raise DataopsError(f"invalid dedup shard {run_id!r}/{shard}")
    run_dir = runs_dir() / run_id
    if not (run_dir / "plan.json").exists():
        return False
    if not force and not _claim(run_dir, shard):
        return False
    try:
        pairs = _shard_from_files(run_dir, shard)
    except Exception as exc:
        if run_dir.exists():
            (run_dir / f"error-{shard}.txt").write_text(f"{type(exc).__name__}: {exc}")
        raise
    target = _pairs_file(run_dir, shard)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, i=pairs.i, j=pairs.j, dist=pairs.dist)
    os.replace(tmp, target)
    return True


def gather(
    run_id: str, shards: int, fan_out: FanOut, progress: Progress | None
) -> tuple[list[Pairs], int]:
    """Send the shard tasks, work on unclaimed slices here, wait for the rest.

    Returns the pairs of every slice and how many slices other processes computed.
    """
    run_dir = runs_dir() / run_id
    me = f"{socket.gethostname()}:{os.getpid()}"
    timeout = get_settings().dedup.shard_timeout
    fan_out(run_id, shards)
    pending = set(range(shards))
    while pending:
        for k in sorted(pending):
            if _pairs_file(run_dir, k).exists():
                pending.discard(k)
                continue
            failed = run_dir / f"error-{k}.txt"
            if _claim(run_dir, k) or failed.exists() or _claim_age(run_dir, k) > timeout:
                failed.unlink(missing_ok=True)
                (run_dir / f"claim-{k}").write_text(me)
                run_shard(run_id, k, force=True)
                pending.discard(k)
        if progress:
            progress(shards - len(pending), shards, "dedup: shard queries")
        if pending:
            time.sleep(0.2)
    parts: list[Pairs] = []
    remote = 0
    for k in range(shards):
        with np.load(_pairs_file(run_dir, k), allow_pickle=False) as data:
            parts.append(Pairs(data["i"], data["j"], data["dist"]))
        remote += _claimed_by(run_dir, k) != me
    return parts, remote
