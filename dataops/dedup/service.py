"""Duplicate detection over the catalog: incremental by default, sharded across workers when large.

A run loads the hashes of every ``ok`` image, opens the persisted pHash index
(``<data dir>/dedup/phash.index`` + sidecar) and checks it against the ``IndexState`` row the
last committed run wrote. When they agree, only images the index has not seen are queried
(:func:`~dataops.dedup.grouping.find_new_pairs`); new pairs become ``DupEdge`` rows and update
the groups through :func:`~dataops.dedup.grouping.plan_merges`, which merges groups a new
image bridges and never splits one. When they disagree (a crash between the file write and
the commit, a deleted or corrupt file, an image quarantined after it was indexed) the index
is rebuilt from the catalog rows the state vouches for, or, when even those changed, every
pair is recomputed and the groups are reconciled as ``--full`` does. Either way the summary
says so.

The file is written before the caller commits, and its checksum is stored in the same
transaction as the edges and groups, so whichever of the two a crash loses, the next run
sees the difference. On PostgreSQL an advisory lock serialises runs; on SQLite the write
phase re-reads the state under the database write lock and refuses to overwrite a run that
committed meanwhile.

Sharding: the new images are cut into slices; shard ``k`` pairs slice ``k`` with everything
indexed before it (the base index plus earlier slices), so the shards together give exactly
the pairs of one in-process pass. Without a broker, or for small catalogs, the shards run
here one after the other on one growing index. With a broker and a large catalog, the job
writes the run's inputs under ``dedup/runs/<job id>/`` (a folder every dedup worker must see,
like the index itself), sends one ``dataops.dedup.shard`` task per slice, and works on
unclaimed slices itself while it waits; a slice is claimed by creating its claim file, so a
worker and the job never both compute it, and a claim that never finishes (a killed worker)
is recomputed after ``dedup.shard_timeout``. The job then writes edges and groups in its own
transaction. No Celery result backend is needed, and the job stays running until the groups
are written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from sqlalchemy import Table, bindparam, delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from dataops.catalog.models import OK, Image
from dataops.config import get_settings
from dataops.db import utcnow
from dataops.dedup.errors import DedupConflict, GroupNotFound, LeakSourceError, NoEmbeddings
from dataops.dedup.grouping import (
    DedupParams,
    ImageHashes,
    find_new_pairs,
    group_pairs,
    match,
    plan_merges,
    representative_rank,
)
from dataops.dedup.index import HashIndex, IndexMismatchError, Pairs, as_codes, fingerprint
from dataops.dedup.models import DupEdge, DupGroup, IndexState
from dataops.dedup.schemas import (
    DedupSummary,
    GroupDetail,
    GroupMember,
    GroupOut,
    Leak,
    LeakReport,
    MemberDetail,
)
from dataops.errors import DataopsError
from dataops.events import service as events

if TYPE_CHECKING:
    from dataops.jobs.runner import JobContext
    from dataops.scoring.models import ModelVersion
    from dataops.scoring.service import EmbeddingStore

log = logging.getLogger(__name__)

INDEX_NAME = "phash"
PHASH, SEMANTIC = "phash", "semantic"
SHARD_TASK = "dataops.dedup.shard"
_CHUNK = 500
_BULK = 5000
# Temporary labels for groups this run creates, far above any real group id.
_TEMP = 1 << 60
# pg_advisory_xact_lock key of dedup runs ("dedupidx").
_LOCK_KEY = 0x6465647570696478
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

Progress = Callable[[int, int, str], None]
FanOut = Callable[[str, int], None]


def dedup_params(radius: int | None = None) -> DedupParams:
    """Match thresholds from the settings, with an optional radius override."""
    settings = get_settings().dedup
    r = settings.radius if radius is None else radius
    if not 0 <= r <= 32:
        raise DataopsError(f"--radius must be between 0 and 32 bits, got {r}")
    return DedupParams(
        radius=r,
        joint_radius=settings.joint_radius,
        flip=settings.flip,
        rep_radius=settings.max_rep_distance,
        max_group_size=settings.max_group_size,
    )


def index_path() -> Path:
    return get_settings().resolved_data_dir / "dedup" / "phash.index"


def _runs_dir() -> Path:
    return get_settings().resolved_data_dir / "dedup" / "runs"


def _checksum(ids: np.ndarray, phash: np.ndarray) -> str:
    """The state row's checksum: the index fingerprint without its ``sha256:`` prefix."""
    return fingerprint(ids, as_codes(phash)).removeprefix("sha256:")


# --------------------------------------------------------------------------- catalog


@dataclass
class _Catalog:
    """Hashes of every ok image (ids ascending), their rank and current groups."""

    hashes: ImageHashes
    rank: np.ndarray
    stored: np.ndarray
    group_of: np.ndarray
    reps: dict[int, int]
    repaired: set[int]

    @property
    def ids(self) -> np.ndarray:
        return self.hashes.ids


def group_roots(session: Session) -> dict[int, int]:
    """Merged group -> the group it ended up in, following chains."""
    merged = {
        group: into
        for group, into in session.execute(
            select(DupGroup.id, DupGroup.merged_into_id).where(DupGroup.merged_into_id.is_not(None))
        )
        if into is not None
    }
    roots: dict[int, int] = {}
    for start in merged:
        current, seen = start, {start}
        while current in merged and merged[current] not in seen:
            current = merged[current]
            seen.add(current)
        roots[start] = current
    return roots


def _load_catalog(session: Session) -> _Catalog:
    rows = session.execute(
        select(
            Image.id,
            Image.phash,
            Image.dhash,
            Image.phash_flip,
            Image.width,
            Image.height,
            Image.ingested_at,
            Image.dup_group_id,
        )
        .where(
            Image.status == OK,
            Image.phash.is_not(None),
            Image.dhash.is_not(None),
            Image.phash_flip.is_not(None),
        )
        .order_by(Image.id)
    ).all()
    n = len(rows)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    hashes = ImageHashes(
        ids=ids,
        phash=np.fromiter((r[1] for r in rows), dtype=np.int64, count=n),
        dhash=np.fromiter((r[2] for r in rows), dtype=np.int64, count=n),
        phash_flip=np.fromiter((r[3] for r in rows), dtype=np.int64, count=n),
    )
    pixels = np.fromiter(((r[4] or 0) * (r[5] or 0) for r in rows), dtype=np.int64, count=n)
    created = np.fromiter((r[6].timestamp() for r in rows), dtype=np.float64, count=n)
    rank = representative_rank(ids, pixels, created)
    roots = group_roots(session)
    stored = np.fromiter((-1 if r[7] is None else r[7] for r in rows), dtype=np.int64, count=n)
    group_of = np.array([roots.get(g, g) for g in stored.tolist()], dtype=np.int64)
    stored_reps = dict(
        session.execute(
            select(DupGroup.id, DupGroup.representative_id).where(DupGroup.merged_into_id.is_(None))
        ).all()
    )
    reps: dict[int, int] = {}
    repaired: set[int] = set()
    grouped = np.flatnonzero(group_of >= 0)
    order = grouped[np.lexsort((rank[grouped], group_of[grouped]))]
    gids, first = np.unique(group_of[order], return_index=True)
    for gid, best in zip(gids.tolist(), ids[order[first]].tolist(), strict=True):
        rep = stored_reps.get(gid)
        at = n if rep is None else int(np.searchsorted(ids, rep))
        if rep is None or at >= n or ids[at] != rep or group_of[at] != gid:
            rep = best
            repaired.add(gid)
        reps[gid] = rep
    return _Catalog(hashes, rank, stored, group_of, reps, repaired)


# --------------------------------------------------------------------------- index state


@dataclass
class _Base:
    """What the index held before this run, and whether it had to be rebuilt."""

    index: HashIndex
    full: bool
    rebuilt: bool
    reason: str | None


def _read_state(session: Session) -> tuple[int, str, int] | None:
    row = session.execute(
        select(IndexState.count, IndexState.checksum, IndexState.max_image_id).where(
            IndexState.name == INDEX_NAME
        )
    ).first()
    return None if row is None else (int(row[0]), str(row[1]), int(row[2]))


def _index_matches_catalog(index: HashIndex, cat: _Catalog) -> bool:
    """Every indexed image is still an ok image with the same pHash."""
    if len(index) == 0:
        return True
    known = np.isin(index.ids, cat.ids)
    if not known.all():
        return False
    pos = cat.hashes.positions(index.ids)
    return index.matches(index.ids, cat.hashes.phash[pos])


def _open_base(state: tuple[int, str, int] | None, cat: _Catalog, full: bool, path: Path) -> _Base:
    if full:
        return _Base(HashIndex(), full=True, rebuilt=False, reason=None)
    if state is None:
        if not path.exists():
            return _Base(HashIndex(), full=False, rebuilt=False, reason=None)
        reason = f"the catalog has no index state for {path}"
    else:
        count, checksum, _ = state
        try:
            index = HashIndex.load(path)
        except IndexMismatchError as exc:
            reason = str(exc)
        else:
            if len(index) != count or index.fingerprint() != f"sha256:{checksum}":
                reason = f"{path} does not match the catalog's index state"
            elif not _index_matches_catalog(index, cat):
                reason = "indexed images were quarantined or changed in the catalog"
            else:
                return _Base(index, full=False, rebuilt=False, reason=None)
    if state is not None:
        count, checksum, max_id = state
        vouched = cat.ids <= max_id
        if int(vouched.sum()) == count and (
            _checksum(cat.ids[vouched], cat.hashes.phash[vouched]) == checksum
        ):
            index = HashIndex.build(cat.ids[vouched], cat.hashes.phash[vouched])
            return _Base(
                index, full=False, rebuilt=True, reason=f"{reason}; rebuilt from the catalog"
            )
    return _Base(HashIndex(), full=True, rebuilt=True, reason=f"{reason}; recomputing every pair")


def _lock(session: Session) -> None:
    """Serialise dedup runs on PostgreSQL until the caller's transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def _begin_write(session: Session, seen: tuple[int, str, int] | None) -> None:
    """Take the database write lock, then refuse to overwrite a run that committed meanwhile."""
    if session.get_bind().dialect.name == "sqlite":
        # A no-op UPDATE takes SQLite's write lock for the rest of the transaction.
        session.execute(
            update(IndexState).where(IndexState.name == INDEX_NAME).values(name=IndexState.name)
        )
    if _read_state(session) != seen:
        raise DedupConflict(
            "another dedup run updated the catalog while this one was computing; run it again"
        )


# --------------------------------------------------------------------------- shards


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
    """Pairs of slice ``shard`` with everything indexed before it; adds the slice to ``index``.

    ``index`` must hold the base images and the slices before ``shard``.
    """
    part = new_ids[bounds[shard] : bounds[shard + 1]]
    if part.size == 0:
        return Pairs.empty()
    visible = hashes.subset(hashes.positions(np.concatenate([index.ids, part])))
    return find_new_pairs(index, visible, part, params)


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


def _write_run(
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
    if not _RUN_ID.match(run_id) or shard < 0:
        raise DataopsError(f"invalid dedup shard {run_id!r}/{shard}")
    run_dir = _runs_dir() / run_id
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


def _gather(
    run_id: str, shards: int, fan_out: FanOut, progress: Progress | None
) -> tuple[list[Pairs], int]:
    """Send the shard tasks, work on unclaimed slices here, wait for the rest.

    Returns the pairs of every slice and how many slices other processes computed.
    """
    run_dir = _runs_dir() / run_id
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


def _send_shards(run_id: str, shards: int) -> None:
    """Queue one shard task per slice, through the same Celery app the jobs facade uses."""
    from workers.app import app

    for k in range(shards):
        app.send_task(SHARD_TASK, args=[run_id, k], queue="dedup")


# --------------------------------------------------------------------------- grouping


@dataclass
class _Outcome:
    """The groups after this run, before they are written."""

    labels: np.ndarray
    reps: dict[int, int]
    merged_into: dict[int, int] = field(default_factory=dict)
    dissolved: list[int] = field(default_factory=list)
    split_reported: int = 0
    split_groups: list[int] = field(default_factory=list)
    refused: list[tuple[int, int]] = field(default_factory=list)
    next_temp: int = _TEMP


def _split_chains(cat: _Catalog, labels: np.ndarray, pairs: Pairs, loose_before: np.ndarray) -> int:
    """Components of previously ungrouped images that the guard did not put in one group."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(pairs) == 0:
        return 0
    a = cat.hashes.positions(pairs.i)
    b = cat.hashes.positions(pairs.j)
    keep = loose_before[a] & loose_before[b]
    if not keep.any():
        return 0
    n = len(cat.hashes)
    graph = coo_matrix((np.ones(int(keep.sum()), np.int8), (a[keep], b[keep])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    touched = np.unique(np.concatenate([a[keep], b[keep]]))
    return _components_not_whole(comp[touched], labels[touched])


def _components_not_whole(comp: np.ndarray, labels: np.ndarray) -> int:
    """How many components hold more than one label, or an unlabelled (-1) member."""
    order = np.lexsort((labels, comp))
    c, lab = comp[order], labels[order]
    mixed = c[1:][(c[1:] == c[:-1]) & (lab[1:] != lab[:-1])]
    return int(np.union1d(mixed, c[lab < 0]).shape[0])


def _relabel(labels: np.ndarray, remap: dict[int, int]) -> None:
    """Replace group labels in place, in one pass over the images."""
    if not remap:
        return
    keys = np.array(sorted(remap), dtype=np.int64)
    values = np.array([remap[k] for k in keys.tolist()], dtype=np.int64)
    moved = np.isin(labels, keys)
    labels[moved] = values[np.searchsorted(keys, labels[moved])]


def _incremental(cat: _Catalog, pairs: Pairs, params: DedupParams) -> _Outcome:
    plan = plan_merges(cat.hashes, cat.group_of, cat.reps, pairs, cat.rank, params)
    # What MergePlan.apply does, without a pass over every image per merge.
    labels = cat.group_of.copy()
    out = _Outcome(labels=labels, reps=dict(cat.reps), next_temp=_TEMP + len(plan.new_groups))
    for merge in plan.merges:
        for gone in merge.absorbed:
            out.merged_into[gone] = merge.target
            out.reps.pop(gone, None)
    _relabel(labels, out.merged_into)
    for merge in plan.merges:
        labels[cat.hashes.positions(merge.joined)] = merge.target
    for offset, members in enumerate(plan.new_groups):
        labels[cat.hashes.positions(members)] = _TEMP + offset
        out.reps[_TEMP + offset] = int(members[0])
    out.refused = [(int(a), int(b)) for a, b in plan.refused_bridges]
    out.split_reported = len(out.refused) + _split_chains(cat, labels, pairs, cat.group_of < 0)
    return out


def _from_scratch(cat: _Catalog, pairs: Pairs, params: DedupParams) -> _Outcome:
    """Group all pairs anew and keep existing group ids where they still fit.

    Each new group takes the id of the existing group it shares most members with (unless a
    better-ranked new group took it first); :func:`_settle_old_groups` then accounts for the
    existing groups that did not keep their id.
    """
    grouping = group_pairs(cat.hashes, pairs, cat.rank, params)
    labels = np.full(len(cat.hashes), -1, dtype=np.int64)
    out = _Outcome(labels=labels, reps={})
    out.split_reported = len(grouping.report.split_components)
    claimed: set[int] = set()
    # Grouping.groups() fails on an empty grouping, hence the guard.
    for members in grouping.groups() if len(grouping) else []:
        pos = cat.hashes.positions(members)
        olds = Counter(int(g) for g in cat.group_of[pos] if g >= 0)
        gid = next(
            (
                g
                for g, _ in sorted(olds.items(), key=lambda kv: (-kv[1], kv[0]))
                if g not in claimed
            ),
            None,
        )
        if gid is None:
            gid = out.next_temp
            out.next_temp += 1
        claimed.add(gid)
        labels[pos] = gid
        out.reps[gid] = int(members[0])
    return out


def _settle_old_groups(cat: _Catalog, out: _Outcome) -> None:
    """After a full recompute: existing groups wholly inside another group are recorded as
    merged into it; those whose members now sit in several groups (or none) as split."""
    alive = set(np.unique(out.labels[out.labels >= 0]).tolist())
    before = np.flatnonzero(cat.group_of >= 0)
    moves = np.unique(np.stack([cat.group_of[before], out.labels[before]], axis=1), axis=0)
    olds, first, counts = np.unique(moves[:, 0], return_index=True, return_counts=True)
    for old, at, count in zip(olds.tolist(), first.tolist(), counts.tolist(), strict=True):
        after = int(moves[at, 1])
        if count > 1 or after < 0:
            out.split_groups.append(old)
            if old not in alive:
                out.dissolved.append(old)
                out.merged_into.pop(old, None)
        elif old not in alive:
            out.merged_into[old] = after
    out.split_reported += len(out.split_groups)


def _semantic_merge(cat: _Catalog, out: _Outcome, sem: Pairs) -> None:
    """Merge groups and images whose embeddings match, without chaining.

    Nodes are the current groups and the ungrouped images. Within each connected component of
    the semantic pairs, groups come first (best representative first), then loose images; a
    node absorbs every other node whose representative matches its own representative, so
    every merged node is directly similar to the surviving representative. Groups keep their
    representative; loose images form a new group around the best-ranked one.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(sem) == 0:
        return
    labels = out.labels
    n = len(cat.hashes)
    similar = set(zip(sem.i.tolist(), sem.j.tolist(), strict=True))
    gids = np.unique(labels[labels >= 0])
    node = np.where(labels >= 0, np.searchsorted(gids, labels), gids.shape[0] + np.arange(n))
    a = node[cat.hashes.positions(sem.i)]
    b = node[cat.hashes.positions(sem.j)]
    distinct = a != b
    if not distinct.any():
        return
    total = gids.shape[0] + n
    graph = coo_matrix(
        (np.ones(int(distinct.sum()), np.int8), (a[distinct], b[distinct])), shape=(total, total)
    )
    _, comp = connected_components(graph, directed=False)
    touched = np.unique(np.concatenate([a[distinct], b[distinct]]))

    def rep_of(k: int) -> int:
        return out.reps[int(gids[k])] if k < gids.shape[0] else int(cat.ids[k - gids.shape[0]])

    def matches(x: int, y: int) -> bool:
        return (min(x, y), max(x, y)) in similar

    remap: dict[int, int] = {}
    order = touched[np.argsort(comp[touched], kind="stable")]
    bounds = np.flatnonzero(np.diff(comp[order])) + 1
    for part in np.split(order, bounds):
        nodes = part.tolist()
        nodes.sort(
            key=lambda k: (k >= gids.shape[0], int(cat.rank[cat.hashes.positions([rep_of(k)])[0]]))
        )
        while nodes:
            head, rest = nodes[0], nodes[1:]
            head_rep = rep_of(head)
            taken = [k for k in rest if matches(head_rep, rep_of(k))]
            nodes = [k for k in rest if k not in taken]
            if not taken:
                continue
            if head < gids.shape[0]:
                target = int(gids[head])
            else:
                target = out.next_temp
                out.next_temp += 1
                out.reps[target] = head_rep
                labels[head - gids.shape[0]] = target
            for k in taken:
                if k < gids.shape[0]:
                    gone = int(gids[k])
                    remap[gone] = target
                    out.merged_into[gone] = target
                    out.reps.pop(gone, None)
                else:
                    labels[k - gids.shape[0]] = target
    _relabel(labels, remap)


# --------------------------------------------------------------------------- persistence


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _sync_edges(
    session: Session, pairs: Pairs, method: str, distance: np.ndarray, *, reconcile: bool
) -> tuple[int, int]:
    """Store pairs not stored yet; with ``reconcile``, delete stored ones no longer found.

    Stale edges include those of images quarantined since, which left the catalog. Returns
    (added, removed).
    """
    edges = cast(Table, DupEdge.__table__)
    keep: np.ndarray = np.ones(len(pairs), dtype=bool)
    stale: list[dict[str, Any]] = []
    if reconcile:
        stored = {
            (a, b)
            for a, b in session.execute(
                select(DupEdge.image_a_id, DupEdge.image_b_id).where(DupEdge.method == method)
            )
        }
        found = list(zip(pairs.i.tolist(), pairs.j.tolist(), strict=True))
        keep = np.array([pair not in stored for pair in found], dtype=bool)
        stale = [{"a": a, "b": b, "m": method} for a, b in stored.difference(found)]
    added = 0
    now = utcnow()
    todo = np.flatnonzero(keep)
    for start in range(0, todo.size, _BULK):
        part = todo[start : start + _BULK]
        rows = [
            {
                "image_a_id": int(pairs.i[k]),
                "image_b_id": int(pairs.j[k]),
                "method": method,
                "distance": float(distance[k]),
                "created_at": now,
            }
            for k in part.tolist()
        ]
        stmt = _insert(session, edges).on_conflict_do_nothing().returning(edges.c.image_a_id)
        added += len(session.execute(stmt, rows).all())
    if stale:
        session.execute(
            delete(edges).where(
                edges.c.image_a_id == bindparam("a"),
                edges.c.image_b_id == bindparam("b"),
                edges.c.method == bindparam("m"),
            ),
            stale,
        )
    return added, len(stale)


def _group_methods(session: Session, group_ids: list[int]) -> dict[int, str]:
    ia, ib = aliased(Image), aliased(Image)
    found: dict[int, set[str]] = {}
    for start in range(0, len(group_ids), _CHUNK):
        part = group_ids[start : start + _CHUNK]
        rows = session.execute(
            select(ia.dup_group_id, DupEdge.method)
            .join(ia, ia.id == DupEdge.image_a_id)
            .join(ib, ib.id == DupEdge.image_b_id)
            .where(ia.dup_group_id == ib.dup_group_id, ia.dup_group_id.in_(part))
            .distinct()
        )
        for gid, method in rows:
            if gid is not None:
                found.setdefault(gid, set()).add(method)
    return {gid: ",".join(sorted(methods)) for gid, methods in found.items()}


def _stats(
    cat: _Catalog, labels: np.ndarray, reps: dict[int, int], params: DedupParams
) -> dict[int, tuple[int, int]]:
    """(size, largest pHash distance to the representative) of every group."""
    grouped = np.flatnonzero(labels >= 0)
    if grouped.size == 0:
        return {}
    rep_ids = np.array([reps[int(g)] for g in labels[grouped]], dtype=np.int64)
    _, dist = match(
        cat.hashes,
        cat.hashes.positions(rep_ids),
        grouped,
        params,
        params.representative_radius,
    )
    dist = np.where(cat.ids[grouped] == rep_ids, 0, dist)
    gids, inverse = np.unique(labels[grouped], return_inverse=True)
    sizes = np.bincount(inverse)
    largest = np.zeros(gids.shape[0], dtype=np.int64)
    np.maximum.at(largest, inverse, dist)
    return {int(g): (int(s), int(m)) for g, s, m in zip(gids, sizes, largest, strict=True)}


@dataclass
class _Written:
    new_groups: int = 0
    merged: int = 0
    changed: bool = False


def _write_groups(
    session: Session, cat: _Catalog, out: _Outcome, params: DedupParams, full: bool
) -> _Written:
    written = _Written()
    now = utcnow()
    labels = out.labels.copy()
    temp = np.unique(labels[labels >= _TEMP])
    if temp.size:
        created = [DupGroup(representative_id=out.reps[int(t)], size=0, methods="") for t in temp]
        session.add_all(created)
        session.flush()
        real = np.array([g.id for g in created], dtype=np.int64)
        mask = labels >= _TEMP
        labels[mask] = real[np.searchsorted(temp, labels[mask])]
        mapping = {int(t): int(r) for t, r in zip(temp, real, strict=True)}
        out.reps = {mapping.get(g, g): r for g, r in out.reps.items()}
        out.merged_into = {g: mapping.get(t, t) for g, t in out.merged_into.items()}
        written.new_groups = int(temp.size)
    # Compared with the stored id, so members still pointing at a merged group move too.
    changed = np.flatnonzero(labels != cat.stored)
    for start in range(0, changed.size, _BULK):
        part = changed[start : start + _BULK]
        session.execute(
            update(Image),
            [
                {"id": int(cat.ids[p]), "dup_group_id": None if labels[p] < 0 else int(labels[p])}
                for p in part
            ],
        )
    outside = np.empty(0, dtype=np.int64)
    if full:
        # Images that left the ok catalog (quarantined) leave their groups too.
        grouped = np.fromiter(
            session.scalars(select(Image.id).where(Image.dup_group_id.is_not(None))),
            dtype=np.int64,
        )
        outside = np.setdiff1d(grouped, cat.ids)
        for start in range(0, outside.size, _BULK):
            session.execute(
                update(Image),
                [{"id": int(i), "dup_group_id": None} for i in outside[start : start + _BULK]],
            )
    touched = {int(g) for g in np.unique(labels[changed]) if g >= 0}
    touched |= {int(g) for g in np.unique(cat.group_of[changed]) if g >= 0}
    touched |= cat.repaired
    if full:
        touched |= {int(g) for g in np.unique(labels[labels >= 0])}
    merges = [
        {"id": gone, "merged_into_id": target, "size": 0, "updated_at": now}
        for gone, target in sorted(out.merged_into.items())
    ]
    if merges:
        session.execute(update(DupGroup), merges)
    written.merged = len(merges)
    if out.dissolved:
        session.execute(
            update(DupGroup),
            [{"id": g, "size": 0, "updated_at": now} for g in sorted(out.dissolved)],
        )
    touched -= set(out.merged_into) | set(out.dissolved)
    stats = _stats(cat, labels, out.reps, params)
    active = sorted(g for g in touched if g in stats)
    methods = _group_methods(session, active)
    current = {
        gid: (rep, size, dist, meth)
        for start in range(0, len(active), _CHUNK)
        for gid, rep, size, dist, meth in session.execute(
            select(
                DupGroup.id,
                DupGroup.representative_id,
                DupGroup.size,
                DupGroup.max_distance,
                DupGroup.methods,
            ).where(DupGroup.id.in_(active[start : start + _CHUNK]))
        )
    }
    updates = []
    for gid in active:
        size, dist = stats[gid]
        wanted = (out.reps[gid], size, dist, methods.get(gid, PHASH))
        if current.get(gid) != wanted:
            updates.append(
                {
                    "id": gid,
                    "representative_id": wanted[0],
                    "size": size,
                    "max_distance": dist,
                    "methods": wanted[3],
                    "updated_at": now,
                }
            )
    if updates:
        session.execute(update(DupGroup), updates)
    written.changed = bool(
        written.new_groups or changed.size or merges or out.dissolved or updates or outside.size
    )
    out.labels = labels
    return written


def _save_state(
    session: Session,
    index: HashIndex,
    state: tuple[int, str, int] | None,
    path: Path,
    *,
    rewrite: bool,
) -> bool:
    """Write the index file, then record what it holds in the caller's transaction."""
    checksum = index.fingerprint().removeprefix("sha256:")
    max_id = int(index.ids.max()) if len(index) else 0
    wanted = (len(index), checksum, max_id)
    if state == wanted and not rewrite:
        return False
    index.save(path)
    if state == wanted:
        return False
    values = {
        "path": str(path),
        "count": wanted[0],
        "checksum": checksum,
        "max_image_id": max_id,
        "updated_at": utcnow(),
    }
    if state is None:
        session.add(IndexState(name=INDEX_NAME, **values))
    else:
        session.execute(update(IndexState).where(IndexState.name == INDEX_NAME).values(**values))
    session.flush()
    return True


# --------------------------------------------------------------------------- semantic


def embedding_source(session: Session) -> tuple[ModelVersion, EmbeddingStore]:
    """The current model version with embeddings and where scoring keeps them."""
    from dataops.scoring.models import ModelVersion
    from dataops.scoring.service import EmbeddingStore

    version = session.scalar(
        select(ModelVersion)
        .where(ModelVersion.is_current.is_(True), ModelVersion.has_embedding.is_(True))
        .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
        .limit(1)
    )
    if version is None:
        raise NoEmbeddings(
            "semantic dedup needs embeddings: register a model with an embedding output and "
            "run `dataops score` first"
        )
    store = EmbeddingStore.of(version)
    if not store.index_path.exists():
        raise NoEmbeddings(
            f"model {version.name}:{version.version} has no embeddings yet: run "
            f"`dataops score --model {version.name}:{version.version}` first"
        )
    return version, store


def _semantic_pairs(session: Session, cat: _Catalog, threshold: float) -> Pairs:
    """Pairs of ok images whose embeddings have cosine similarity >= threshold."""
    version, store = embedding_source(session)
    try:
        index = store.index()
    except IndexMismatchError as exc:
        raise NoEmbeddings(
            f"the embeddings of {version.name}:{version.version} are unreadable ({exc}); "
            f"run `dataops score --model {version.name}:{version.version}` again"
        ) from exc
    pairs = index.range_pairs(threshold)
    keep = np.isin(pairs.i, cat.ids) & np.isin(pairs.j, cat.ids)
    return Pairs(pairs.i[keep], pairs.j[keep], pairs.dist[keep])


def _stored_semantic_pairs(session: Session, cat: _Catalog) -> Pairs:
    rows = session.execute(
        select(DupEdge.image_a_id, DupEdge.image_b_id, DupEdge.distance).where(
            DupEdge.method == SEMANTIC
        )
    ).all()
    if not rows:
        return Pairs.empty(np.float32)
    arr = np.array(rows, dtype=np.float64)
    i, j = arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64)
    keep = np.isin(i, cat.ids) & np.isin(j, cat.ids)
    return Pairs(i[keep], j[keep], (1.0 - arr[keep, 2]).astype(np.float32))


# --------------------------------------------------------------------------- the run


def run_dedup(
    session: Session,
    *,
    radius: int | None = None,
    semantic: bool = False,
    full: bool = False,
    actor: str | None = None,
    progress: Progress | None = None,
    run_id: str | None = None,
    fan_out: FanOut | None = None,
) -> DedupSummary:
    """Find near-duplicates of new images (or all, with ``full``) and update the groups.

    ``fan_out(run_id, shards)`` sends shard tasks to workers; without it (or for catalogs
    under ``dedup.shard_min_images``) every shard runs here.
    """
    started = time.monotonic()
    settings = get_settings().dedup
    params = dedup_params(radius)

    def report(done: int, total: int, message: str) -> None:
        if progress:
            progress(done, total, message)

    _lock(session)
    report(0, 4, "dedup: loading hashes")
    cat = _load_catalog(session)
    state = _read_state(session)
    path = index_path()
    base = _open_base(state, cat, full, path)
    if base.rebuilt:
        log.warning("dedup index rebuilt: %s", base.reason)
    new_ids = np.setdiff1d(cat.ids, base.index.ids)
    bounds = shard_bounds(int(new_ids.size), settings.shard_size)
    shards = len(bounds) - 1
    sem = Pairs.empty(np.float32)
    if semantic:
        sem = _semantic_pairs(session, cat, settings.semantic_threshold)
    elif base.full:
        sem = _stored_semantic_pairs(session, cat)
    distributed = (
        fan_out is not None
        and run_id is not None
        and shards > 1
        and len(cat.hashes) > settings.shard_min_images
    )
    remote = 0
    index = base.index
    if distributed:
        assert fan_out is not None
        assert run_id is not None
        if not _RUN_ID.match(run_id):
            raise DataopsError(f"invalid dedup run id {run_id!r}")
        if base.rebuilt and len(index):
            index.save(path)
        run_dir = _runs_dir() / run_id
        try:
            _write_run(run_dir, cat.hashes, new_ids, bounds, index, params)
            parts, remote = _gather(run_id, shards, fan_out, progress)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        index.add(new_ids, cat.hashes.phash[cat.hashes.positions(new_ids)])
    else:
        parts = []
        for k in range(shards):
            parts.append(shard_pairs(index, cat.hashes, new_ids, bounds, k, params))
            report(k + 1, shards, "dedup: querying new images")
    # Each pair belongs to the shard of its later image, so the shards' pairs are disjoint.
    pairs = Pairs.concat(parts).canonical()
    report(3, 4, "dedup: grouping")

    from_scratch = base.full or not cat.reps
    if from_scratch:
        out = _from_scratch(cat, pairs, params)
    elif len(pairs):
        out = _incremental(cat, pairs, params)
    else:
        out = _Outcome(labels=cat.group_of.copy(), reps=dict(cat.reps))
    _semantic_merge(cat, out, sem)
    if from_scratch:
        _settle_old_groups(cat, out)

    _begin_write(session, state)
    edges_added, dropped = _sync_edges(session, pairs, PHASH, pairs.dist, reconcile=base.full)
    if semantic:
        sem_distance = 1.0 - sem.dist.astype(np.float64)
        more, gone = _sync_edges(session, sem, SEMANTIC, sem_distance, reconcile=base.full)
        edges_added += more
        dropped += gone
    written = _write_groups(session, cat, out, params, base.full)
    state_changed = _save_state(
        session, index, state, path, rewrite=base.rebuilt or not path.exists()
    )
    labels = out.labels
    groups_after = int(np.unique(labels[labels >= 0]).shape[0])
    sizes = Counter(int(g) for g in labels[labels >= 0])
    oversize = [
        [out.reps[g], size] for g, size in sorted(sizes.items()) if size > params.max_group_size
    ]
    changed = bool(edges_added or dropped or written.changed or state_changed)
    summary = DedupSummary(
        images=len(cat.hashes),
        new_images=int(new_ids.size),
        pairs=len(pairs),
        edges_added=edges_added,
        groups=groups_after,
        new_groups=written.new_groups,
        merged=written.merged,
        split_reported=out.split_reported,
        oversize_groups=oversize,
        split_groups=sorted(out.split_groups),
        semantic_pairs=len(sem),
        full=base.full,
        rebuilt_index=base.rebuilt,
        rebuild_reason=base.reason,
        shards=shards if new_ids.size else 0,
        gpu=index.uses_gpu,
        changed=changed,
        seconds=0.0,
    )
    if changed or base.rebuilt:
        details = summary.model_dump(exclude={"seconds"})
        details.update(
            merges=[[t, g] for g, t in sorted(out.merged_into.items())],
            refused_bridges=[list(r) for r in out.refused],
            stale_edges_removed=dropped,
            shards_remote=remote,
        )
        events.record(session, "dedup.run", "dedup", INDEX_NAME, actor=actor, details=details)
    session.flush()
    summary.seconds = round(time.monotonic() - started, 3)
    return summary


def run_dedup_job(ctx: JobContext) -> dict[str, Any]:
    """Job handler: params are {radius, semantic, full}; shards go to workers with a broker."""
    params = ctx.params
    fan_out = _send_shards if get_settings().broker_url else None
    with ctx.session() as session:
        summary = run_dedup(
            session,
            radius=params.get("radius"),
            semantic=bool(params.get("semantic")),
            full=bool(params.get("full")),
            actor=ctx.actor,
            progress=ctx.progress,
            run_id=ctx.job_id,
            fan_out=fan_out,
        )
        # The job finishes with the groups it wrote: a retry answers with this summary
        # rather than a second run's (which would find no new image).
        return ctx.finish(session, summary.model_dump())


# --------------------------------------------------------------------------- reading groups


def _members(session: Session, group_ids: Sequence[int]) -> dict[int, list[Image]]:
    found: dict[int, list[Image]] = {}
    for start in range(0, len(group_ids), _CHUNK):
        part = list(group_ids[start : start + _CHUNK])
        for image in session.scalars(
            select(Image).where(Image.dup_group_id.in_(part)).order_by(Image.id)
        ):
            assert image.dup_group_id is not None
            found.setdefault(image.dup_group_id, []).append(image)
    return found


def _ordered(members: list[Image], rep: int | None) -> list[Image]:
    return sorted(members, key=lambda m: (m.id != rep, m.id))


def list_groups(session: Session, *, limit: int | None = None, offset: int = 0) -> list[GroupOut]:
    """Live groups in id order, representative first in each."""
    stmt = (
        select(DupGroup.id, DupGroup.representative_id)
        .where(DupGroup.merged_into_id.is_(None), DupGroup.size > 0)
        .order_by(DupGroup.id)
        .offset(offset)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    groups = session.execute(stmt).all()
    members = _members(session, [g for g, _ in groups])
    return [
        GroupOut(
            id=gid,
            representative=rep,
            members=[
                GroupMember(image_id=m.id, uri=m.uri, sha256=m.sha256)
                for m in _ordered(members.get(gid, []), rep)
            ],
        )
        for gid, rep in groups
        if members.get(gid)
    ]


def get_group(session: Session, group_id: int) -> DupGroup:
    group = session.get(DupGroup, group_id)
    if group is None:
        raise GroupNotFound(f"no duplicate group {group_id} (see `dataops dedup groups`)")
    return group


def _distances(members: list[Image], rep: int | None, params: DedupParams) -> dict[int, int]:
    """pHash distance of each member to the representative (flip-aware, as matching is)."""
    usable = [m for m in members if None not in (m.phash, m.dhash, m.phash_flip)]
    if rep is None or not any(m.id == rep for m in usable):
        return {}
    hashes = ImageHashes(
        ids=np.array([m.id for m in usable], dtype=np.int64),
        phash=np.array([m.phash for m in usable], dtype=np.int64),
        dhash=np.array([m.dhash for m in usable], dtype=np.int64),
        phash_flip=np.array([m.phash_flip for m in usable], dtype=np.int64),
    )
    rep_pos = hashes.positions([rep])[0]
    rows = np.arange(len(hashes))
    _, dist = match(hashes, np.full(rows.shape[0], rep_pos), rows, params)
    return {int(i): int(d) for i, d in zip(hashes.ids, dist, strict=True)}


def group_detail(session: Session, group_id: int) -> GroupDetail:
    group = get_group(session, group_id)
    members = _ordered(_members(session, [group.id]).get(group.id, []), group.representative_id)
    dist = _distances(members, group.representative_id, dedup_params())
    return GroupDetail(
        id=group.id,
        representative=group.representative_id,
        size=len(members),
        max_distance=group.max_distance,
        methods=[m for m in group.methods.split(",") if m],
        merged_into=group.merged_into_id,
        created_at=group.created_at,
        updated_at=group.updated_at,
        members=[
            MemberDetail(
                image_id=m.id,
                uri=m.uri,
                sha256=m.sha256,
                width=m.width,
                height=m.height,
                distance=dist.get(m.id),
            )
            for m in members
        ],
    )


def contact_sheet(session: Session, group_id: int, *, tile: int | None = None) -> bytes:
    """A PNG of the group's thumbnails, representative first, labelled with distances."""
    from dataops.dedup import contact_sheet as sheet

    detail = group_detail(session, group_id)
    images = {
        m.id: m
        for m in session.scalars(
            select(Image).where(Image.id.in_([m.image_id for m in detail.members]))
        )
    }
    tiles = []
    for member in detail.members:
        if member.image_id == detail.representative:
            label = f"#{member.image_id} representative"
        elif member.distance is None:
            label = f"#{member.image_id}"
        else:
            label = f"#{member.image_id} d={member.distance}"
        tiles.append(
            sheet.Tile(label=label, data=sheet.image_bytes(images[member.image_id], session))
        )
    return sheet.render(tiles, title=f"duplicate group {detail.id}", tile=tile)


# --------------------------------------------------------------------------- leaks


def _manifest_splits(session: Session, ref: str) -> dict[int, str]:
    from dataops.manifests.models import ManifestRow
    from dataops.manifests.service import get_manifest

    manifest = get_manifest(session, ref)
    return dict(
        session.execute(
            select(ManifestRow.image_id, ManifestRow.split).where(
                ManifestRow.content_hash == manifest.content_hash
            )
        ).all()
    )


def _attribute_splits(session: Session, attribute: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for image_id, attrs in session.execute(
        select(Image.id, Image.attributes).where(Image.dup_group_id.is_not(None))
    ):
        value = (attrs or {}).get(attribute)
        if value not in (None, ""):
            out[image_id] = str(value)
    return out


def find_leaks(
    session: Session, *, manifest: str | None = None, split_attr: str | None = None
) -> LeakReport:
    """Duplicate groups whose members sit in different splits (train/test leakage)."""
    if (manifest is None) == (split_attr is None):
        raise LeakSourceError("name exactly one split source: --manifest NAME or --split-attr ATTR")
    if manifest is not None:
        splits = _manifest_splits(session, manifest)
        source = f"manifest:{manifest}"
    else:
        assert split_attr is not None
        splits = _attribute_splits(session, split_attr)
        source = f"attribute:{split_attr}"
    roots = group_roots(session)
    by_group: dict[int, dict[str, list[int]]] = {}
    for image_id, group in _grouped_images(session, list(splits)):
        root = roots.get(group, group)
        by_group.setdefault(root, {}).setdefault(splits[image_id], []).append(image_id)
    reps = (
        dict(
            session.execute(
                select(DupGroup.id, DupGroup.representative_id).where(
                    DupGroup.id.in_(list(by_group))
                )
            ).all()
        )
        if by_group
        else {}
    )
    checked = [g for g, s in by_group.items() if sum(len(v) for v in s.values()) > 1]
    leaks = [
        Leak(
            group_id=g,
            representative=reps.get(g),
            splits={name: sorted(ids) for name, ids in sorted(by_group[g].items())},
        )
        for g in sorted(checked)
        if len(by_group[g]) > 1
    ]
    return LeakReport(source=source, groups_checked=len(checked), leaks=leaks)


def _grouped_images(session: Session, image_ids: Iterable[int]) -> list[tuple[int, int]]:
    ids = list(image_ids)
    out: list[tuple[int, int]] = []
    for start in range(0, len(ids), _CHUNK):
        out.extend(
            (i, g)
            for i, g in session.execute(
                select(Image.id, Image.dup_group_id).where(
                    Image.id.in_(ids[start : start + _CHUNK]), Image.dup_group_id.is_not(None)
                )
            )
            if g is not None
        )
    return out
