"""Manifests in the catalog: freeze accepted labels into immutable, content-addressed records.

A manifest holds, for every labeled, non-quarantined image in scope, the accepted label
version of one task (an adjudicated live version wins over an accepted one, then the newest;
the same rule as :func:`dataops.labeling.service.accepted_label`) and a split. Its id is the
sha256 of the canonical body (:mod:`dataops.manifests.body`): the same catalog, seed and split
spec give the same id, and any change of label, image or seed gives another.

Split rule. An image's split is drawn from its group key (:func:`group_key`): the id of its
duplicate group, else its own sha256. Both are stable: a DupGroup id is assigned once and
kept while members join (dedup merges groups into a surviving id and never renumbers), and an
image's sha256 is its identity. So no group straddles splits, and regrowing a group never
moves it. What a key cannot survive is a merge (two groups become one, or an ungrouped image
joins a group): that is what ``parent`` is for. With a parent manifest, images already in the
parent keep their parent split, and a new image whose group has members in the parent takes
that group's split; only groups with no member in the parent are drawn by hash.

Storage. The JSONL body and its Parquet copy go to the blob store under
``manifests/<hex>/``; the rows go to ``manifest_rows`` once per content hash, so a second
name for the same content shares them. Manifests and their rows are append-only: the
database refuses UPDATE and DELETE on both tables.

Like every service, these functions take the caller's Session, flush and never commit.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, cast, func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from dataops.catalog.models import OK, QUARANTINED, Image, Source
from dataops.db import is_sqlite, utcnow
from dataops.dedup.service import group_roots
from dataops.errors import DataopsError, NotFound
from dataops.events import service as events
from dataops.labeling.models import ACCEPTED, ADJUDICATED, Guideline, LabelVersion
from dataops.manifests import models, rows_files
from dataops.manifests.body import ManifestError, ManifestRow, verify_body, verify_parquet
from dataops.manifests.classes import CLASSES_KEY, guideline_classes
from dataops.manifests.datasheet import NO_CLASS, Frozen, classes_per_row, label_classes
from dataops.manifests.errors import (
    EmptyManifest,
    ManifestExists,
    ManifestNotFound,
    ManifestTampered,
)
from dataops.manifests.models import Manifest
from dataops.manifests.schemas import (
    DiffReport,
    ImageProblem,
    ManifestDetail,
    ManifestOut,
    Relabel,
    RowOut,
    SplitMove,
    VerifyReport,
)
from dataops.manifests.splits import (
    StratumBalance,
    assign_splits,
    format_split_spec,
    normalize_split_spec,
    stratum_balance,
)
from dataops.names import refuse_look_alike
from dataops.selection.models import Batch, BatchItem
from dataops.selection.tasks import accepted_tasks, describe, manifest_task
from dataops.storage import BlobStore, BlobStoreError, check_key, get_store, read_uri

if TYPE_CHECKING:
    from dataops.jobs.runner import JobContext

DEFAULT_SPLITS = "train=0.8,val=0.1,test=0.1"
DEFAULT_TASK = "default"
KEY_PREFIX = "manifests"
STRATIFY_LABEL = "label"
QUERY_SOURCE = "source"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_HEX_PREFIX = re.compile(r"[0-9a-f]{8,64}")
_FETCH_CHUNK = 50_000
STAGES = 5
_COPY_COLUMNS = (
    "content_hash",
    "sha256",
    "image_id",
    "split",
    "label_version_id",
    "label",
    "dup_group_id",
)

_COPY_NULL = "\\N"

Progress = Callable[[int, int, str], None]
# Awaits rows being stored; True when this creation stored them, False when they were there.
RowsStored = Callable[[], bool]


# --- names, keys and references ---------------------------------------------------------------


def check_name(name: str) -> str:
    """Names become file names in exports and datasheets, so keep them plain."""
    if not _NAME.fullmatch(name):
        raise DataopsError(
            f"bad manifest name {name!r}: use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def hex_of(manifest_id: str) -> str:
    return manifest_id.removeprefix("sha256:")


def body_key(manifest_id: str) -> str:
    return f"{KEY_PREFIX}/{hex_of(manifest_id)}/body.jsonl"


def parquet_key(manifest_id: str) -> str:
    return f"{KEY_PREFIX}/{hex_of(manifest_id)}/body.parquet"


def rows_file_key(manifest_id: str, name: str, digest: str) -> str:
    """Content-addressed key of a rows-only file (``rows.jsonl``/``rows.parquet``)."""
    suffix = name.rsplit(".", 1)[-1]
    return f"{KEY_PREFIX}/{hex_of(manifest_id)}/rows/{digest}.{suffix}"


def datasheet_md_key(json_key: str) -> str:
    return json_key.removesuffix(".json") + ".md"


def parse_query(items: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` filters: ``source`` is the ingest source, any other key an attribute."""
    query: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DataopsError(f"--query expects KEY=VALUE (e.g. site=lab-3), got {item!r}")
        if key in query and query[key] != value:
            raise DataopsError(f"--query gives {key!r} twice with different values")
        query[key] = value
    return query


def get_manifest(session: Session, ref: str) -> Manifest:
    """By name, by id (``sha256:<hex>``) or by a unique hex prefix of 8+ digits.

    Several names can share one id; a reference by id gives the oldest of them.
    """
    by_name = session.scalar(select(Manifest).where(Manifest.name == ref))
    if by_name is not None:
        return by_name
    digits = hex_of(ref.lower())
    if _HEX_PREFIX.fullmatch(digits):
        ids = list(
            session.scalars(
                select(Manifest.content_hash)
                .where(Manifest.content_hash.startswith("sha256:" + digits))
                .distinct()
                .limit(2)
            )
        )
        if len(ids) > 1:
            raise DataopsError(f"{ref!r} matches several manifests; give more digits")
        if ids:
            first = session.scalar(
                select(Manifest)
                .where(Manifest.content_hash == ids[0])
                .order_by(Manifest.id)
                .limit(1)
            )
            if first is not None:
                return first
    raise ManifestNotFound(f"no manifest {ref!r} (see `dataops manifest list`)")


def list_manifests(session: Session) -> list[Manifest]:
    return list(session.scalars(select(Manifest).order_by(Manifest.id)))


def body_location(manifest: Manifest, store: BlobStore | None = None) -> str:
    """A local path when the store is on disk, else the store URL of the body."""
    store = store or get_store()
    return store.local_path(manifest.body_key) or f"{store.url}/{manifest.body_key}"


def _parent_name(session: Session, manifest: Manifest) -> str | None:
    if manifest.parent_id is None:
        return None
    return session.scalar(select(Manifest.name).where(Manifest.id == manifest.parent_id))


def _recorded_rows_files(manifest: Manifest) -> dict[str, dict[str, str]]:
    """Rows-only files recorded with the manifest (none for manifests made before them)."""
    recorded = (manifest.selection or {}).get(rows_files.RECORD_KEY)
    return dict(recorded) if isinstance(recorded, dict) else {}


def _summary(session: Session, manifest: Manifest, store: BlobStore | None) -> dict[str, Any]:
    store = store or get_store()
    return {
        "name": manifest.name,
        "id": manifest.content_hash,
        "splits": dict(manifest.split_counts),
        "path": body_location(manifest, store),
        "split_spec": manifest.splits["spec"],
        "seed": manifest.seed,
        "parent": _parent_name(session, manifest),
        "selection": dict(manifest.selection),
        "body_key": manifest.body_key,
        "parquet_key": manifest.parquet_key,
        "datasheet_key": manifest.datasheet_key,
        "rows_files": {
            name: store.local_path(entry["key"]) or f"{store.url}/{entry['key']}"
            for name, entry in _recorded_rows_files(manifest).items()
        },
        "created_by": manifest.created_by,
        "created_at": manifest.created_at,
    }


def manifest_out(
    session: Session, manifest: Manifest, store: BlobStore | None = None
) -> ManifestOut:
    return ManifestOut(**_summary(session, manifest, store), rows=manifest.row_count)


def manifest_detail(
    session: Session,
    manifest: Manifest,
    *,
    limit: int | None = None,
    store: BlobStore | None = None,
) -> ManifestDetail:
    """The record and its rows (from the database copy), in sha256 order."""
    stmt = (
        select(
            models.ManifestRow.sha256,
            models.ManifestRow.split,
            models.ManifestRow.label,
            models.ManifestRow.dup_group_id,
        )
        .where(models.ManifestRow.content_hash == manifest.content_hash)
        .order_by(models.ManifestRow.sha256)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = [
        RowOut(sha256=sha, split=split, label=label, dup_group_id=group)
        for sha, split, label, group in session.connection().execute(stmt)
    ]
    names = list(
        session.scalars(
            select(Manifest.name)
            .where(Manifest.content_hash == manifest.content_hash)
            .order_by(Manifest.id)
        )
    )
    return ManifestDetail(
        **_summary(session, manifest, store),
        row_count=manifest.row_count,
        names=names,
        rows=rows,
    )


# --- splits -----------------------------------------------------------------------------------


def group_key(sha256: str, dup_group_id: int | None) -> str:
    """The key a row's split is drawn from; see the module docstring for why it is stable."""
    return sha256 if dup_group_id is None else f"group-{dup_group_id}"


@dataclass
class SplitPlan:
    """Each image's split and how it was decided."""

    splits: dict[str, str]
    inherited: int = 0
    joined: int = 0
    drawn: int = 0
    straddling: list[str] = field(default_factory=list)


def _group_split(counts: Mapping[str, int], ratios: Mapping[str, float]) -> str:
    """The split most of a group's parent members are in.

    A tie only happens when groups that were in different splits merged; the new member
    then goes to the smaller split, and between equal ones to the later in the spec
    (evaluation splits are the small ones and come last), so a new near-duplicate of a test
    image does not land in training.
    """
    order = list(ratios)
    return max(counts, key=lambda s: (counts[s], -ratios[s], order.index(s)))


def plan_splits(
    group_of: Mapping[str, str],
    seed: int,
    spec: str | Mapping[str, float],
    *,
    parent_split: Mapping[str, str] | None = None,
    parent_groups: Mapping[str, Mapping[str, int]] | None = None,
) -> SplitPlan:
    """Split of every image (sha256 -> group key), keeping a parent generation's splits.

    ``parent_split`` maps images of the parent to their split; ``parent_groups`` maps the
    current group key of each parent image to how many of its members are in each split.
    Images of the parent keep their split; a new image whose group has parent members takes
    that group's split (:func:`_group_split`); every other group is drawn by hash.
    ``straddling`` lists the group keys whose members ended up in more than one split,
    which only happens when groups that the parent had in different splits have merged.
    """
    ratios = normalize_split_spec(spec)
    parent_split = parent_split or {}
    parent_groups = parent_groups or {}
    unknown = sorted(set(parent_split.values()) - ratios.keys())
    if unknown:
        raise ManifestError(
            f"the parent has splits {unknown}, which are not in {format_split_spec(ratios)!r}; "
            "keep the parent's split names"
        )
    fresh = {key for sha, key in group_of.items() if sha not in parent_split}
    drawn_keys = {key for key in fresh if key not in parent_groups}
    by_hash = assign_splits(drawn_keys, seed, ratios)
    joined_split = {key: _group_split(parent_groups[key], ratios) for key in fresh - drawn_keys}
    plan = SplitPlan(splits={})
    # Only groups with parent members can straddle: drawn groups get one split for all.
    seen: dict[str, set[str]] = defaultdict(set)
    for sha, key in group_of.items():
        if sha in parent_split:
            split = parent_split[sha]
            plan.inherited += 1
        elif key in joined_split:
            split = joined_split[key]
            plan.joined += 1
        else:
            plan.splits[sha] = by_hash[key]
            plan.drawn += 1
            continue
        plan.splits[sha] = split
        seen[key].add(split)
    plan.straddling = sorted(key for key, splits in seen.items() if len(splits) > 1)
    return plan


# --- reading the catalog ----------------------------------------------------------------------


def _scoped(stmt: Any, query: Mapping[str, str], batch_ids: Sequence[int] | None) -> Any:
    for key, value in query.items():
        if key == QUERY_SOURCE:
            stmt = stmt.where(Image.source_id.in_(select(Source.id).where(Source.name == value)))
        else:
            stmt = stmt.where(Image.attributes[key].as_string() == value)
    if batch_ids is not None:
        stmt = stmt.where(
            Image.id.in_(select(BatchItem.image_id).where(BatchItem.batch_id.in_(batch_ids)))
        )
    return stmt


def _chosen_labels(task: str) -> Any:
    """Per image, the id of the label version a manifest freezes.

    Live versions are the newest of each (image, annotator, batch) chain; among the live
    accepted or adjudicated ones an adjudicated version wins, then the newest. Plain
    aggregates, so PostgreSQL hashes a million labels instead of sorting them.
    """
    live = (
        select(func.max(LabelVersion.id).label("id"))
        .where(LabelVersion.task == task)
        .group_by(LabelVersion.image_id, LabelVersion.annotator_id, LabelVersion.batch_id)
        .cte("live")
    )
    return (
        select(
            LabelVersion.image_id,
            func.coalesce(
                func.max(LabelVersion.id).filter(LabelVersion.status == ADJUDICATED),
                func.max(LabelVersion.id),
            ).label("id"),
        )
        .join(live, live.c.id == LabelVersion.id)
        .where(LabelVersion.status.in_((ACCEPTED, ADJUDICATED)))
        .group_by(LabelVersion.image_id)
        .cte("chosen")
    )


def _parse_json(texts: Sequence[str | None]) -> list[Any]:
    """Decode many JSON documents in one call (several times faster than one call each)."""
    return list(json.loads("[" + ",".join(t or "null" for t in texts) + "]"))


def _root(roots: Mapping[int, int], group: int | None) -> int | None:
    return None if group is None else roots.get(group, group)


def _freeze(
    session: Session,
    task: str,
    query: Mapping[str, str],
    batch_ids: Sequence[int] | None,
    roots: Mapping[int, int],
) -> Frozen:
    chosen = _chosen_labels(task)
    version = aliased(LabelVersion, name="version")
    stmt = _scoped(
        select(
            Image.id,
            Image.sha256,
            Image.blob_key,
            Image.uri,
            Image.width,
            Image.height,
            Image.dup_group_id,
            cast(Image.attributes, Text),
            Image.source_id,
            version.id,
            cast(version.payload, Text),
            version.guideline_id,
            version.annotator_id,
            version.batch_id,
            version.status,
        )
        .join(chosen, chosen.c.image_id == Image.id)
        .join(version, version.id == chosen.c.id)
        .where(Image.status == OK)
        .order_by(Image.sha256),
        query,
        batch_ids,
    )
    guidelines = {
        gid: f"{name}:{number}"
        for gid, name, number in session.execute(
            select(Guideline.id, Guideline.name, Guideline.version)
        )
    }
    if not is_sqlite(session):
        # One large read: hash joins and the sort fit in memory instead of spilling to disk,
        # and compiling it (JIT) costs seconds that a plain hash join does not need.
        session.execute(text("SET LOCAL work_mem = '1GB'"))
        session.execute(text("SET LOCAL jit = off"))
    frozen = Frozen()
    result = session.connection().execute(stmt.execution_options(yield_per=_FETCH_CHUNK))
    for chunk in result.partitions():
        texts = [row[10] for row in chunk]
        frozen.label_texts += texts
        labels = _parse_json(texts)
        frozen.attributes += [a or {} for a in _parse_json([row[7] for row in chunk])]
        for row, label in zip(chunk, labels, strict=True):
            (image_id, sha, blob, uri, width, height, group, _, source_id, version_id) = row[:10]
            frozen.rows.append(
                {
                    "sha256": sha,
                    "blob_key": blob or "",
                    "uri": uri,
                    "split": "",
                    "label_version_id": version_id,
                    "label": label,
                    "guideline_version": guidelines.get(row[11]),
                    "dup_group_id": roots.get(group, group) if roots else group,
                    "width": width or 0,
                    "height": height or 0,
                }
            )
            frozen.image_ids.append(image_id)
            frozen.source_ids.append(source_id)
        frozen.annotator_ids += [row[12] for row in chunk]
        frozen.batch_ids += [row[13] for row in chunk]
        frozen.statuses += [row[14] for row in chunk]
    return frozen


def _parent_splits(
    session: Session, parent: Manifest, roots: Mapping[int, int]
) -> tuple[dict[str, str], dict[str, Counter[str]]]:
    """Parent images' splits, and per current group key the parent splits of its members."""
    rows = session.connection().execute(
        select(models.ManifestRow.sha256, models.ManifestRow.split, Image.dup_group_id)
        .join(Image, Image.id == models.ManifestRow.image_id)
        .where(models.ManifestRow.content_hash == parent.content_hash)
    )
    by_image: dict[str, str] = {}
    by_group: dict[str, Counter[str]] = defaultdict(Counter)
    for sha, split, group in rows:
        by_image[sha] = split
        by_group[group_key(sha, _root(roots, group))][split] += 1
    return by_image, by_group


def _balance(frozen: Frozen, spec: Mapping[str, float], stratify_by: str) -> list[StratumBalance]:
    """Per-stratum balance, one stratum per group: that of its first member by sha256."""
    if stratify_by == STRATIFY_LABEL:
        strata_of = ["+".join(names) for names in classes_per_row(frozen.rows)]
    else:
        strata_of = [
            NO_CLASS if (value := a.get(stratify_by)) is None else str(value)
            for a in frozen.attributes
        ]
    assignment: dict[str, str] = {}
    strata: dict[str, str] = {}
    for row, stratum in zip(frozen.rows, strata_of, strict=True):
        key = group_key(row["sha256"], row["dup_group_id"])
        if key not in assignment:
            assignment[key] = row["split"]
            strata[key] = stratum
    return stratum_balance(assignment, strata, spec)


# --- blob store -------------------------------------------------------------------------------


def _store_file(store: BlobStore, key: str, path: Path) -> None:
    """Copy a file into the store under a temporary name, then rename: all or nothing."""
    target = f"{store.root}/{check_key(key)}"
    tmp = f"{target}.tmp-{uuid.uuid4().hex}"
    try:
        store.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        store.fs.put_file(str(path), tmp)
        store.fs.mv(tmp, target)
    except OSError as exc:
        raise BlobStoreError(f"cannot write {key} to {store.url}: {exc.strerror or exc}") from exc


def _store_bytes(store: BlobStore, key: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="dataops-manifest-") as tmp:
        path = Path(tmp) / "file"
        path.write_bytes(data)
        _store_file(store, key, path)


@contextmanager
def local_copy(store: BlobStore, key: str) -> Iterator[Path]:
    """A local path of a stored file: the file itself on a local store, else a temp copy."""
    local = store.local_path(key)
    if local is not None:
        yield Path(local)
        return
    with tempfile.TemporaryDirectory(prefix="dataops-manifest-") as tmp:
        path = Path(tmp) / key.rsplit("/", 1)[-1]
        try:
            store.fs.get_file(f"{store.root}/{check_key(key)}", str(path))
        except FileNotFoundError:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise BlobStoreError(f"cannot read {key} from {store.url}: {exc}") from exc
        yield path


def read_rows(manifest: Manifest, store: BlobStore | None = None) -> list[ManifestRow]:
    """Rows of a manifest from its stored body, refusing a body that no longer hashes to its id."""
    from dataops.manifests.body import read_body

    store = store or get_store()
    with local_copy(store, manifest.body_key) as path:
        problems = verify_body(path, manifest.content_hash)
        if problems:
            raise ManifestTampered(
                f"manifest {manifest.name} ({manifest.content_hash}): stored body fails "
                f"verification: {problems[0]}"
            )
        _, rows = read_body(path)
    return rows


# --- database rows ----------------------------------------------------------------------------


def _rows_exist(session: Session, manifest_id: str) -> bool:
    return (
        session.scalar(
            select(models.ManifestRow.sha256)
            .where(models.ManifestRow.content_hash == manifest_id)
            .limit(1)
        )
        is not None
    )


def _copy_text(value: str) -> str:
    """A value in COPY's text format: backslash and the row and column separators escaped."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


def _copy_blocks(manifest_id: str, frozen: Frozen) -> Iterator[bytes]:
    """The rows in COPY text format, a block of lines at a time.

    One join per block instead of one ``write_row`` call per row: Python builds a million
    lines in a couple of seconds. In image order, the foreign-key checks read the images
    table sequentially instead of at random: about twice as fast at a million rows.
    """
    order = sorted(range(len(frozen.rows)), key=frozen.image_ids.__getitem__)
    for start in range(0, len(order), _FETCH_CHUNK):
        lines = []
        for index in order[start : start + _FETCH_CHUNK]:
            row = frozen.rows[index]
            label = frozen.label_texts[index]
            group = row["dup_group_id"]
            lines.append(
                f"{manifest_id}\t{row['sha256']}\t{frozen.image_ids[index]}\t{row['split']}\t"
                f"{row['label_version_id']}\t{_COPY_NULL if label is None else _copy_text(label)}\t"
                f"{_COPY_NULL if group is None else group}\n"
            )
        yield "".join(lines).encode()


def _insert_rows_postgres(dbapi: Any, manifest_id: str, frozen: Frozen) -> None:
    """COPY the rows straight into ``manifest_rows`` over the session's own connection.

    The fast path for a million rows. The caller holds the content hash's advisory lock and
    has seen no rows for it, so nothing can conflict (see :func:`_store_rows`).
    """
    columns = ", ".join(_COPY_COLUMNS)
    with (
        dbapi.cursor() as cursor,
        cursor.copy(f"COPY manifest_rows ({columns}) FROM STDIN") as copy,
    ):
        for block in _copy_blocks(manifest_id, frozen):
            copy.write(block)


def _insert_rows_sqlite(session: Session, manifest_id: str, frozen: Frozen) -> None:
    stmt = sqlite.insert(models.ManifestRow).on_conflict_do_nothing()
    batch: list[dict[str, Any]] = []
    for row, image_id in zip(frozen.rows, frozen.image_ids, strict=True):
        batch.append(
            {
                "content_hash": manifest_id,
                "sha256": row["sha256"],
                "image_id": image_id,
                "split": row["split"],
                "label_version_id": row["label_version_id"],
                "label": row["label"],
                "dup_group_id": row["dup_group_id"],
            }
        )
        if len(batch) == _FETCH_CHUNK:
            session.execute(stmt, batch)
            batch = []
    if batch:
        session.execute(stmt, batch)


def _store_rows(session: Session, manifest_id: str, frozen: Frozen, pool: Executor) -> RowsStored:
    """Start storing the rows of a content hash unless stored already.

    The result says, once awaited, whether this call stored them; until then the session
    must not be used. Two creations of the same content must store one copy. On PostgreSQL
    a transaction-scoped advisory lock on the content hash serialises them: the second waits
    until the first commits or rolls back, then sees its rows (or none) and acts on that; the
    COPY then runs on ``pool``, so the server loads the rows while this process writes the
    Parquet copy and the datasheet. SQLite has one writer at a time anyway, and job progress
    is written from another connection that would wait for this one's write lock, so the
    rows are inserted only when awaited, after the last progress report; INSERT ... ON
    CONFLICT DO NOTHING keeps a repeat harmless.
    """
    if is_sqlite(session):

        def insert_sqlite() -> bool:
            if _rows_exist(session, manifest_id):
                return False
            _insert_rows_sqlite(session, manifest_id, frozen)
            return True

        return insert_sqlite
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": manifest_id}
    )
    if _rows_exist(session, manifest_id):
        return lambda: False
    dbapi = session.connection().connection.driver_connection
    copying = pool.submit(_insert_rows_postgres, dbapi, manifest_id, frozen)

    def await_copy() -> bool:
        copying.result()
        return True

    return await_copy


def _is_name_conflict(exc: IntegrityError) -> bool:
    message = str(exc.orig)
    return "uq_manifests_name" in message or "manifests.name" in message


# --- create -----------------------------------------------------------------------------------


def _check_batches(session: Session, batch_ids: Sequence[int]) -> list[int]:
    wanted = sorted({int(b) for b in batch_ids})
    if not wanted:
        raise DataopsError("--from-batches needs at least one batch id")
    found = set(session.scalars(select(Batch.id).where(Batch.id.in_(wanted))))
    missing = [b for b in wanted if b not in found]
    if missing:
        raise NotFound(f"no batch {', '.join(map(str, missing))} (see `dataops batches list`)")
    return wanted


def check_request(
    session: Session,
    name: str,
    *,
    seed: int,
    splits: str,
    from_batches: Sequence[int] | None,
    stratify_by: str | None,
    parent: str | None,
) -> tuple[dict[str, float], Manifest | None, list[int] | None]:
    """Everything about a create request that can be refused before any work is done."""
    check_name(name)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DataopsError(f"seed must be an integer, got {seed!r}")
    ratios = normalize_split_spec(splits)
    if stratify_by is not None and not stratify_by.strip():
        raise DataopsError("--stratify-by needs 'label' or an attribute name")
    if session.scalar(select(Manifest.id).where(Manifest.name == name)):
        raise ManifestExists(
            f"manifest {name!r} already exists; manifests are immutable, pick a new name"
        )
    refuse_look_alike(session, Manifest.name, name, "manifest")
    parent_row = get_manifest(session, parent) if parent else None
    batch_ids = _check_batches(session, from_batches) if from_batches is not None else None
    return ratios, parent_row, batch_ids


def create_manifest(
    session: Session,
    name: str,
    *,
    seed: int = 0,
    splits: str = DEFAULT_SPLITS,
    from_batches: Sequence[int] | None = None,
    query: Mapping[str, str] | None = None,
    stratify_by: str | None = None,
    parent: str | None = None,
    task: str | None = None,
    actor: str | None = None,
    store: BlobStore | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Freeze the accepted labels in scope into a new named manifest (see the module docstring).

    ``from_batches`` limits it to images of those batches, ``query`` to images whose ingest
    source (``source``) or attributes match; ``stratify_by`` (``label`` or an attribute name)
    measures how evenly each stratum is split and reports it in the datasheet. ``task``
    defaults to the task of ``from_batches``, else the only task with accepted labels.
    """
    from dataops.manifests import datasheet
    from dataops.manifests.body import write_body

    def report(done: int, message: str) -> None:
        # Job progress is written from another connection; on SQLite it would wait for this
        # transaction's write lock, so every report comes before the first write.
        if progress is not None:
            progress(done, STAGES, message)

    ratios, parent_row, batch_ids = check_request(
        session,
        name,
        seed=seed,
        splits=splits,
        from_batches=from_batches,
        stratify_by=stratify_by,
        parent=parent,
    )
    task = manifest_task(session, task, batch_ids)
    spec = format_split_spec(ratios)
    query = dict(query or {})
    store = store or get_store()
    report(0, "reading the catalog")
    roots = group_roots(session)
    frozen = _freeze(session, task, query, batch_ids, roots)
    if not frozen.rows:
        others = {name: n for name, n in accepted_tasks(session).items() if name != task}
        raise EmptyManifest(
            f"no image in scope has an accepted label for task {task!r}: accept labels first "
            "(`dataops labels import --accept`, or an audit), or check --query/--from-batches"
            + (f"; tasks with accepted labels: {describe(others)}" if others else "")
        )
    report(1, "assigning splits")
    group_of = {row["sha256"]: group_key(row["sha256"], row["dup_group_id"]) for row in frozen.rows}
    parent_split: dict[str, str] = {}
    parent_groups: dict[str, Counter[str]] = {}
    if parent_row is not None:
        parent_split, parent_groups = _parent_splits(session, parent_row, roots)
    plan = plan_splits(
        group_of, seed, ratios, parent_split=parent_split, parent_groups=parent_groups
    )
    for row in frozen.rows:
        row["split"] = plan.splits[row["sha256"]]
    del group_of, parent_split, parent_groups
    scope = _scope_counts(session, query, batch_ids, len(frozen.rows))
    catalog = datasheet.catalog_sections(session, frozen)
    classes = guideline_classes(session, frozen.rows)
    report(2, "writing the body")
    # From the moment the id is known until the rows are awaited, the rows may be loading on
    # the pool's thread: nothing in between uses the session.
    with (
        tempfile.TemporaryDirectory(prefix="dataops-manifest-") as tmp,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="manifest-rows") as pool,
    ):
        storing: list[RowsStored] = []
        files = write_body(
            tmp,
            frozen.rows,
            seed,
            ratios,
            on_id=lambda ident: storing.append(_store_rows(session, ident, frozen, pool)),
        )
        manifest_id = files.manifest_id
        _store_file(store, body_key(manifest_id), files.jsonl_path)
        _store_file(store, parquet_key(manifest_id), files.parquet_path)
        stored_rows_files: dict[str, dict[str, str]] = {}
        for file_name, (path, digest) in rows_files.write_hashed(
            Path(tmp), frozen.rows, files.jsonl_path
        ).items():
            key = rows_file_key(manifest_id, file_name, digest)
            _store_file(store, key, path)
            stored_rows_files[file_name] = {"key": key, "sha256": digest}
        report(3, "writing the datasheet")
        selection: dict[str, Any] = {
            "task": task,
            "labels": [ADJUDICATED, ACCEPTED],
            "image_status": OK,
            "query": query,
            "from_batches": batch_ids,
            "stratify_by": stratify_by,
            "parent": parent_row.name if parent_row else None,
            "parent_id": parent_row.content_hash if parent_row else None,
            "splits_inherited": plan.inherited,
            "splits_joined": plan.joined,
            "splits_drawn": plan.drawn,
            CLASSES_KEY: classes,
            rows_files.RECORD_KEY: stored_rows_files,
        }
        split_counts = dict.fromkeys(ratios, 0)
        for row in frozen.rows:
            split_counts[row["split"]] += 1
        created_at = utcnow()
        sheet = datasheet.build(
            datasheet.Facts(
                name=name,
                manifest_id=manifest_id,
                seed=seed,
                spec=spec,
                selection=selection,
                created_by=actor,
                created_at=created_at,
                parent=parent_row.name if parent_row else None,
                frozen=frozen,
                split_counts=split_counts,
                balance=_balance(frozen, ratios, stratify_by) if stratify_by else None,
                straddling=plan.straddling,
                scope=scope,
                catalog=catalog,
                body_key=body_key(manifest_id),
                parquet_key=parquet_key(manifest_id),
            ),
        )
        sheet_json = datasheet.to_json(sheet)
        sheet_hex = hashlib.sha256(sheet_json).hexdigest()
        sheet_key = f"{KEY_PREFIX}/{hex_of(manifest_id)}/datasheets/{sheet_hex}.json"
        _store_bytes(store, sheet_key, sheet_json)
        _store_bytes(store, datasheet_md_key(sheet_key), datasheet.to_markdown(sheet).encode())
        report(4, "storing rows")
        stored = storing[0]()
    manifest = Manifest(
        name=name,
        content_hash=manifest_id,
        seed=seed,
        splits={"spec": spec, "names": list(ratios)},
        selection=selection,
        parent_id=parent_row.id if parent_row else None,
        row_count=len(frozen.rows),
        split_counts=split_counts,
        body_key=body_key(manifest_id),
        parquet_key=parquet_key(manifest_id),
        datasheet_key=sheet_key,
        created_by=actor,
        created_at=created_at,
    )
    session.add(manifest)
    try:
        session.flush()
    except IntegrityError as exc:
        if _is_name_conflict(exc):
            raise ManifestExists(
                f"manifest {name!r} was created meanwhile; manifests are immutable, pick a new name"
            ) from None
        raise
    events.record(
        session,
        "manifest.created",
        "manifest",
        name,
        actor=actor,
        details={
            "id": manifest_id,
            "rows": len(frozen.rows),
            "splits": split_counts,
            "parent": parent_row.name if parent_row else None,
            "rows_stored": stored,
        },
    )
    return manifest


def _scope_counts(
    session: Session, query: Mapping[str, str], batch_ids: Sequence[int] | None, rows: int
) -> dict[str, Any]:
    """How many images in scope were left out, and why."""
    by_status: dict[str, int] = {
        status: int(n)
        for status, n in session.execute(
            _scoped(select(Image.status, func.count()).group_by(Image.status), query, batch_ids)
        )
    }
    reasons = session.execute(
        _scoped(
            select(Image.quarantine_reason, func.count())
            .where(Image.status == QUARANTINED)
            .group_by(Image.quarantine_reason)
            .order_by(func.count().desc(), Image.quarantine_reason)
            .limit(20),
            query,
            batch_ids,
        )
    )
    ok = int(by_status.get(OK, 0))
    return {
        "images_in_scope": int(sum(by_status.values())),
        "quarantined": int(by_status.get(QUARANTINED, 0)),
        "quarantine_reasons": {reason or "(no reason)": int(n) for reason, n in reasons},
        "no_accepted_label": ok - rows,
    }


def run_manifest_job(ctx: JobContext) -> dict[str, Any]:
    """Job handler: params are {name, seed, splits, from_batches, query, stratify_by, parent, task}."""
    params = ctx.params
    with ctx.session() as session:
        manifest = create_manifest(
            session,
            params["name"],
            seed=int(params.get("seed", 0)),
            splits=params.get("splits") or DEFAULT_SPLITS,
            from_batches=params.get("from_batches"),
            query=params.get("query") or {},
            stratify_by=params.get("stratify_by"),
            parent=params.get("parent"),
            task=params.get("task"),
            actor=ctx.actor,
            progress=ctx.progress,
        )
        # The job finishes with the manifest: a retry answers with it instead of failing on
        # the name this job took.
        result = ctx.finish(session, manifest_out(session, manifest).model_dump(mode="json"))
    ctx.progress(STAGES, STAGES, "done", force=True)
    return result


# --- verify -----------------------------------------------------------------------------------


def _image_location(store: BlobStore, row: ManifestRow) -> str:
    if row["blob_key"]:
        return store.local_path(row["blob_key"]) or f"{store.url}/{row['blob_key']}"
    return row["uri"]


def image_bytes(store_url: str, row: ManifestRow) -> bytes:
    """An image's bytes as a manifest references them: its blob if stored, else its original."""
    if row["blob_key"]:
        return get_store(store_url).get(row["blob_key"])
    return read_uri(row["uri"])


def _check_image(store: BlobStore, row: ManifestRow) -> ImageProblem | None:
    location = _image_location(store, row)
    try:
        if "://" in location and not location.startswith("file://"):
            digest = hashlib.sha256(image_bytes(store.url, row)).hexdigest()
        else:
            with open(location.removeprefix("file://"), "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return ImageProblem(sha256=row["sha256"], location=location, problem="missing")
    except (OSError, DataopsError) as exc:
        return ImageProblem(sha256=row["sha256"], location=location, problem=f"unreadable: {exc}")
    if digest != row["sha256"]:
        return ImageProblem(
            sha256=row["sha256"], location=location, problem="changed", actual_sha256=digest
        )
    return None


def _database_rows_problems(
    session: Session, manifest: Manifest, rows: Sequence[ManifestRow]
) -> list[str]:
    """The database copy of the rows must say what the body says."""
    stored = {
        sha: (split, version)
        for sha, split, version in session.connection().execute(
            select(
                models.ManifestRow.sha256,
                models.ManifestRow.split,
                models.ManifestRow.label_version_id,
            ).where(models.ManifestRow.content_hash == manifest.content_hash)
        )
    }
    body = {row["sha256"]: (row["split"], row["label_version_id"]) for row in rows}
    if stored == body:
        return []
    differing = len(stored.keys() ^ body.keys()) + sum(
        1 for sha in stored.keys() & body.keys() if stored[sha] != body[sha]
    )
    return [f"database rows differ from the body for {differing} images"]


def verify_manifest(
    session: Session,
    ref: str,
    *,
    body_only: bool = False,
    store: BlobStore | None = None,
    progress: Progress | None = None,
    workers: int = 8,
) -> VerifyReport:
    """Re-hash the body and, unless ``body_only``, the Parquet copy and every image.

    Problems are reported, never raised: a tampered body, a Parquet copy that does not
    rebuild the id, database rows that differ from the body, and images that are missing
    or whose bytes changed.
    """
    from dataops.manifests.body import read_body

    manifest = get_manifest(session, ref)
    store = store or get_store()
    problems: list[str] = []
    rows: list[ManifestRow] = []
    with local_copy(store, manifest.body_key) as path:
        body_problems = verify_body(path, manifest.content_hash)
        problems += [f"body: {p}" for p in body_problems]
        if not body_only and not body_problems:
            _, rows = read_body(path)
    if body_only:
        count = session.scalar(
            select(func.count()).where(models.ManifestRow.content_hash == manifest.content_hash)
        )
        if count != manifest.row_count:
            problems.append(
                f"database holds {count} rows for this id, the manifest records {manifest.row_count}"
            )
        return VerifyReport(
            name=manifest.name,
            id=manifest.content_hash,
            ok=not problems,
            body_only=True,
            problems=problems,
            images_checked=0,
            missing=[],
            changed=[],
        )
    with local_copy(store, manifest.parquet_key) as path:
        problems += [f"parquet: {p}" for p in verify_parquet(path, manifest.content_hash)]
    for file_name, entry in _recorded_rows_files(manifest).items():
        with local_copy(store, entry["key"]) as path:
            file_problem = rows_files.file_problem(file_name, path, entry["sha256"])
        if file_problem is not None:
            problems.append(f"rows files: {file_problem}")
    if body_problems:
        problems.append("images not checked: the body cannot be trusted")
    else:
        problems += _database_rows_problems(session, manifest, rows)
    missing: list[ImageProblem] = []
    changed: list[ImageProblem] = []
    total = len(rows)
    if progress is not None:
        progress(0, total, "images")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, problem in enumerate(pool.map(lambda r: _check_image(store, r), rows), 1):
            if problem is not None:
                (changed if problem.problem == "changed" else missing).append(problem)
            if progress is not None:
                progress(done, total, "images")
    if missing:
        problems.append(f"{len(missing)} images missing or unreadable")
    if changed:
        problems.append(f"{len(changed)} images changed since the manifest was made")
    return VerifyReport(
        name=manifest.name,
        id=manifest.content_hash,
        ok=not problems,
        body_only=False,
        problems=problems,
        images_checked=total,
        missing=missing,
        changed=changed,
    )


# --- diff -------------------------------------------------------------------------------------


def _rows_of(
    session: Session, manifest: Manifest
) -> dict[str, tuple[str, dict[str, Any] | None, int | None]]:
    return {
        sha: (split, label, group)
        for sha, split, label, group in session.connection().execute(
            select(
                models.ManifestRow.sha256,
                models.ManifestRow.split,
                models.ManifestRow.label,
                models.ManifestRow.dup_group_id,
            ).where(models.ManifestRow.content_hash == manifest.content_hash)
        )
    }


def _class_counts(
    rows: Mapping[str, tuple[str, dict[str, Any] | None, int | None]],
) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for split, label, _ in rows.values():
        for name in label_classes(label) or [NO_CLASS]:
            counts[split][name] += 1
    return {split: dict(sorted(c.items())) for split, c in sorted(counts.items())}


def diff_manifests(session: Session, a: str, b: str, *, limit: int | None = 1000) -> DiffReport:
    """Added, removed and relabelled images, split moves and class counts from ``a`` to ``b``.

    A shared image that changed split is a leak (it was trained on in one and evaluated on
    in the other); so is a duplicate group of ``b`` whose members are in several splits.
    Lists are cut at ``limit`` entries each (counts are always complete).
    """
    first, second = get_manifest(session, a), get_manifest(session, b)
    old, new = _rows_of(session, first), _rows_of(session, second)
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    shared = sorted(old.keys() & new.keys())
    relabelled = [
        Relabel(sha256=sha, before=old[sha][1], after=new[sha][1])
        for sha in shared
        if old[sha][1] != new[sha][1]
    ]
    moves = [
        SplitMove(sha256=sha, before=old[sha][0], after=new[sha][0])
        for sha in shared
        if old[sha][0] != new[sha][0]
    ]
    group_splits: dict[int, set[str]] = defaultdict(set)
    for split, _, group in new.values():
        if group is not None:
            group_splits[group].add(split)
    straddling = sorted(g for g, s in group_splits.items() if len(s) > 1)

    def cut(items: list[Any]) -> list[Any]:
        return items if limit is None else items[:limit]

    lists = (added, removed, relabelled, moves, straddling)
    return DiffReport(
        a=first.name,
        b=second.name,
        a_id=first.content_hash,
        b_id=second.content_hash,
        counts={
            "a_rows": len(old),
            "b_rows": len(new),
            "added": len(added),
            "removed": len(removed),
            "unchanged": len(shared)
            - len({r.sha256 for r in relabelled} | {m.sha256 for m in moves}),
            "relabelled": len(relabelled),
            "split_moves": len(moves),
            "straddling_groups": len(straddling),
        },
        added=cut(added),
        removed=cut(removed),
        relabelled=cut(relabelled),
        split_moves=cut(moves),
        straddling_groups=cut(straddling),
        leak=bool(moves or straddling),
        class_counts={"a": _class_counts(old), "b": _class_counts(new)},
        truncated=limit is not None and any(len(items) > limit for items in lists),
    )


# --- datasheet and export ---------------------------------------------------------------------


def read_datasheet(
    manifest: Manifest, store: BlobStore | None = None
) -> tuple[dict[str, Any], str]:
    """The stored datasheet of a manifest: (JSON document, Markdown)."""
    if manifest.datasheet_key is None:
        raise NotFound(f"manifest {manifest.name} has no datasheet")
    store = store or get_store()
    document = json.loads(store.get(manifest.datasheet_key))
    markdown = store.get(datasheet_md_key(manifest.datasheet_key)).decode()
    return document, markdown


def locate_image(store: BlobStore, row: ManifestRow) -> str | bytes:
    """A local path of an image when there is one (exports hard-link it), else its bytes."""
    location = _image_location(store, row)
    if "://" in location and not location.startswith("file://"):
        return image_bytes(store.url, row)
    return location.removeprefix("file://")
