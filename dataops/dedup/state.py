"""What the persisted pHash index held before a run, and whether the catalog still vouches for it.

A run loads the hashes of every ``ok`` image, opens the index (``<data dir>/dedup/phash.index``
+ sidecar) and checks it against the ``IndexState`` row the last committed run wrote. When
they disagree (a crash between the file write and the commit, a deleted or corrupt file, an
image quarantined after it was indexed) the index is rebuilt from the catalog rows the state
vouches for, or, when even those changed, every pair is recomputed.

The file is written before the caller commits, and its checksum is stored in the same
transaction as the edges and groups, so whichever of the two a crash loses, the next run
sees the difference. On PostgreSQL an advisory lock serialises runs; on SQLite the write
phase re-reads the state under the database write lock and refuses to overwrite a run that
committed meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dataops.catalog.models import OK, Image
from dataops.config import get_settings
from dataops.database.base import utcnow
from dataops.database.dialect import advisory_xact_lock, is_sqlite
from dataops.dedup.errors import DedupConflict
from dataops.dedup.grouping import ImageHashes, representative_rank
from dataops.dedup.index import HashIndex, IndexMismatchError, as_codes, fingerprint
from dataops.dedup.models import DupGroup, IndexState
from dataops.dedup.service import group_roots

INDEX_NAME = "phash"
# pg_advisory_xact_lock key of dedup runs ("dedupidx").
LOCK_KEY = 0x6465647570696478

# (count, checksum, max image id) of the IndexState row.
StateRow = tuple[int, str, int]


def index_path() -> Path:
    return get_settings().resolved_data_dir / "dedup" / "phash.index"


def runs_dir() -> Path:
    return get_settings().resolved_data_dir / "dedup" / "runs"


def state_checksum(ids: np.ndarray, phash: np.ndarray) -> str:
    """The state row's checksum: the index fingerprint without its ``sha256:`` prefix."""
    return fingerprint(ids, as_codes(phash)).removeprefix("sha256:")


@dataclass
class Catalog:
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


def load_catalog(session: Session) -> Catalog:
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
    return Catalog(hashes, rank, stored, group_of, reps, repaired)


@dataclass
class Base:
    """What the index held before this run, and whether it had to be rebuilt."""

    index: HashIndex
    full: bool
    rebuilt: bool
    reason: str | None


def read_state(session: Session) -> StateRow | None:
    row = session.execute(
        select(IndexState.count, IndexState.checksum, IndexState.max_image_id).where(
            IndexState.name == INDEX_NAME
        )
    ).first()
    return None if row is None else (int(row[0]), str(row[1]), int(row[2]))


def _index_matches_catalog(index: HashIndex, cat: Catalog) -> bool:
    """Every indexed image is still an ok image with the same pHash."""
    if len(index) == 0:
        return True
    known = np.isin(index.ids, cat.ids)
    if not known.all():
        return False
    pos = cat.hashes.positions(index.ids)
    return index.matches(index.ids, cat.hashes.phash[pos])


def open_base(state: StateRow | None, cat: Catalog, full: bool, path: Path) -> Base:
    if full:
        return Base(HashIndex(), full=True, rebuilt=False, reason=None)
    if state is None:
        if not path.exists():
            return Base(HashIndex(), full=False, rebuilt=False, reason=None)
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
                return Base(index, full=False, rebuilt=False, reason=None)
    if state is not None:
        count, checksum, max_id = state
        vouched = cat.ids <= max_id
        if int(vouched.sum()) == count and (
            state_checksum(cat.ids[vouched], cat.hashes.phash[vouched]) == checksum
        ):
            index = HashIndex.build(cat.ids[vouched], cat.hashes.phash[vouched])
            return Base(
                index, full=False, rebuilt=True, reason=f"{reason}; rebuilt from the catalog"
            )
    return Base(HashIndex(), full=True, rebuilt=True, reason=f"{reason}; recomputing every pair")


def lock_runs(session: Session) -> None:
    """Serialise dedup runs until the caller's transaction ends."""
    advisory_xact_lock(session, LOCK_KEY)


def begin_write(session: Session, seen: StateRow | None) -> None:
    """Take the database write lock, then refuse to overwrite a run that committed meanwhile."""
    if is_sqlite(session):
        # A no-op UPDATE takes SQLite's write lock for the rest of the transaction.
        session.execute(
            update(IndexState).where(IndexState.name == INDEX_NAME).values(name=IndexState.name)
        )
    if read_state(session) != seen:
        raise DedupConflict(
            "another dedup run updated the catalog while this one was computing; run it again"
        )


def save_state(
    session: Session,
    index: HashIndex,
    state: StateRow | None,
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
