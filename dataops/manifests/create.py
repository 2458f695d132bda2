"""Creating a manifest: read the accepted labels in scope, split them, write and record it.

Split rule. An image's split is drawn from its group key (:func:`splits.group_key`): the id
of its duplicate group, else its own sha256; so no group straddles splits, and regrowing a
group never moves it. What a key cannot survive is a merge (two groups become one, or an
ungrouped image joins a group): that is what ``parent`` is for. With a parent manifest,
images already in the parent keep their parent split, and a new image whose group has
members in the parent takes that group's split; only groups with no member in the parent are
drawn by hash (:func:`splits.plan_splits`).

The same catalog, seed and split spec give the same id; any change of label, image or seed
gives another. Like every service, this takes the caller's Session, flushes and never
commits: the job handler (:mod:`dataops.manifests.jobs`) owns the transaction.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dataops.catalog.models import OK
from dataops.database.base import utcnow
from dataops.dedup.service import group_roots
from dataops.errors import DataopsError, NotFound
from dataops.events import service as events
from dataops.labeling.models import ACCEPTED, ADJUDICATED
from dataops.manifests import datasheet, rows_files
from dataops.manifests.classes import CLASSES_KEY, guideline_classes
from dataops.manifests.datasheet import Frozen
from dataops.manifests.datasheet_markdown import to_markdown
from dataops.manifests.errors import EmptyManifest, ManifestExists
from dataops.manifests.files import store_bytes, store_file
from dataops.manifests.freeze import balance, freeze, parent_splits, scope_counts
from dataops.manifests.models import Manifest
from dataops.manifests.rows import RowsStored, store_rows
from dataops.manifests.schemas import ManifestRequest, check_name
from dataops.manifests.service import (
    KEY_PREFIX,
    body_key,
    datasheet_md_key,
    get_manifest,
    hex_of,
    parquet_key,
    rows_file_key,
)
from dataops.manifests.splits import (
    SplitPlan,
    format_split_spec,
    group_key,
    normalize_split_spec,
    plan_splits,
)
from dataops.names import refuse_look_alike
from dataops.quality.service import label_error_rates
from dataops.selection.models import Batch
from dataops.selection.tasks import accepted_tasks, describe, manifest_task
from dataops.storage import BlobStore, get_store

STAGES = 5

Progress = Callable[[int, int, str], None]


@dataclass
class Checked:
    """A create request that passed every check that needs no work."""

    ratios: dict[str, float]
    parent: Manifest | None
    batch_ids: list[int] | None


@dataclass
class Written:
    """What writing the files produced: the id, the stored files and the facts recorded."""

    manifest_id: str
    selection: dict[str, Any]
    split_counts: dict[str, int]
    datasheet_key: str
    rows_stored: bool
    created_at: datetime


def _check_batches(session: Session, batch_ids: Sequence[int]) -> list[int]:
    wanted = sorted({int(b) for b in batch_ids})
    if not wanted:
        raise DataopsError("{from_batches} needs at least one batch id", fields=("from_batches",))
    found = set(session.scalars(select(Batch.id).where(Batch.id.in_(wanted))))
    missing = [b for b in wanted if b not in found]
    if missing:
        raise NotFound(f"no batch {', '.join(map(str, missing))} (see `dataops batches list`)")
    return wanted


def check_request(session: Session, request: ManifestRequest) -> Checked:
    """Everything about a create request that can be refused before any work is done."""
    check_name(request.name)
    ratios = normalize_split_spec(request.splits)
    if request.stratify_by is not None and not request.stratify_by.strip():
        raise DataopsError(
            "{stratify_by} needs 'label' or an attribute name", fields=("stratify_by",)
        )
    if session.scalar(select(Manifest.id).where(Manifest.name == request.name)):
        raise ManifestExists(
            f"manifest {request.name!r} already exists; manifests are immutable, pick a new name"
        )
    refuse_look_alike(session, Manifest.name, request.name, "manifest")
    parent = get_manifest(session, request.parent) if request.parent else None
    batch_ids = (
        _check_batches(session, request.from_batches) if request.from_batches is not None else None
    )
    return Checked(ratios=ratios, parent=parent, batch_ids=batch_ids)


def _read(
    session: Session, task: str, query: Mapping[str, str], checked: Checked
) -> tuple[Frozen, dict[int, int]]:
    """The rows in scope with their accepted labels, refusing an empty manifest."""
    roots = group_roots(session)
    frozen = freeze(session, task, query, checked.batch_ids, roots)
    if not frozen.rows:
        others = {name: n for name, n in accepted_tasks(session).items() if name != task}
        raise EmptyManifest(
            f"no image in scope has an accepted label for task {task!r}: accept labels first "
            "(`dataops labels import --accept`, or an audit), or check {query}/{from_batches}"
            + (f"; tasks with accepted labels: {describe(others)}" if others else ""),
            fields=("query", "from_batches"),
        )
    return frozen, roots


def _without_label_issues(session: Session, frozen: Frozen, run_id: int, task: str) -> Frozen:
    """The rows whose label the label-quality run did not flag."""
    from dataops.quality.service import flagged_label_ids

    flagged = flagged_label_ids(session, run_id, task=task)
    keep = [i for i, row in enumerate(frozen.rows) if row["label_version_id"] not in flagged]
    out = Frozen()
    for name in vars(frozen):
        setattr(out, name, [getattr(frozen, name)[i] for i in keep])
    if not out.rows:
        raise EmptyManifest(
            f"label-quality run {run_id} flagged every label in scope; nothing is left to freeze",
            fields=("exclude_label_issues",),
        )
    return out


def _split(
    session: Session, frozen: Frozen, seed: int, checked: Checked, roots: Mapping[int, int]
) -> SplitPlan:
    """Give every row its split, keeping the parent's where there is one."""
    group_of = {row["sha256"]: group_key(row["sha256"], row["dup_group_id"]) for row in frozen.rows}
    parent_split: dict[str, str] = {}
    parent_groups: dict[str, Counter[str]] = {}
    if checked.parent is not None:
        parent_split, parent_groups = parent_splits(session, checked.parent, roots)
    plan = plan_splits(
        group_of, seed, checked.ratios, parent_split=parent_split, parent_groups=parent_groups
    )
    for row in frozen.rows:
        row["split"] = plan.splits[row["sha256"]]
    return plan


def _store_body(
    store: BlobStore,
    tmp: Path,
    frozen: Frozen,
    seed: int,
    ratios: Mapping[str, float],
    on_id: Callable[[str], object],
) -> tuple[str, dict[str, dict[str, str]]]:
    """Write the body, its Parquet copy and the rows-only files into the store."""
    from dataops.manifests.body import write_body

    files = write_body(tmp, frozen.rows, seed, ratios, on_id=on_id)
    manifest_id = files.manifest_id
    store_file(store, body_key(manifest_id), files.jsonl_path)
    store_file(store, parquet_key(manifest_id), files.parquet_path)
    stored: dict[str, dict[str, str]] = {}
    for file_name, (path, digest) in rows_files.write_hashed(
        tmp, frozen.rows, files.jsonl_path
    ).items():
        key = rows_file_key(manifest_id, file_name, digest)
        store_file(store, key, path)
        stored[file_name] = {"key": key, "sha256": digest}
    return manifest_id, stored


def _store_datasheet(store: BlobStore, manifest_id: str, facts: datasheet.Facts) -> str:
    """Store the datasheet (JSON and Markdown) under a key of its own hash."""
    sheet = datasheet.build(facts)
    sheet_json = datasheet.to_json(sheet)
    sheet_hex = hashlib.sha256(sheet_json).hexdigest()
    sheet_key = f"{KEY_PREFIX}/{hex_of(manifest_id)}/datasheets/{sheet_hex}.json"
    store_bytes(store, sheet_key, sheet_json)
    store_bytes(store, datasheet_md_key(sheet_key), to_markdown(sheet).encode())
    return sheet_key


def _write(
    session: Session,
    request: ManifestRequest,
    *,
    task: str,
    frozen: Frozen,
    plan: SplitPlan,
    checked: Checked,
    actor: str | None,
    store: BlobStore,
    report: Callable[[int, str], None],
) -> Written:
    """Write every file of the manifest and store its rows, returning what to record.

    From the moment the id is known until the rows are awaited, the rows may be loading on
    the pool's thread: nothing in between uses the session, so everything the datasheet
    needs from the catalog is read first.
    """
    ratios, parent = checked.ratios, checked.parent
    scope = scope_counts(session, request.query, checked.batch_ids, len(frozen.rows))
    catalog = datasheet.catalog_sections(session, frozen)
    label_errors = label_error_rates(session, task, request.exclude_label_issues)
    if label_errors is not None:
        catalog["labeling"]["label_errors"] = label_errors
    classes = guideline_classes(session, frozen.rows)
    report(2, "writing the body")
    with (
        tempfile.TemporaryDirectory(prefix="dataops-manifest-") as tmp,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="manifest-rows") as pool,
    ):
        storing: list[RowsStored] = []

        def start_rows(ident: str, pool: Executor = pool) -> None:
            storing.append(store_rows(session, ident, frozen, pool))

        manifest_id, stored_rows_files = _store_body(
            store, Path(tmp), frozen, request.seed, ratios, start_rows
        )
        report(3, "writing the datasheet")
        selection: dict[str, Any] = {
            "task": task,
            "labels": [ADJUDICATED, ACCEPTED],
            "image_status": OK,
            "query": dict(request.query),
            "from_batches": checked.batch_ids,
            "stratify_by": request.stratify_by,
            "parent": parent.name if parent else None,
            "parent_id": parent.content_hash if parent else None,
            "splits_inherited": plan.inherited,
            "splits_joined": plan.joined,
            "splits_drawn": plan.drawn,
            CLASSES_KEY: classes,
            rows_files.RECORD_KEY: stored_rows_files,
        }
        if request.exclude_label_issues is not None:
            selection["exclude_label_issues"] = request.exclude_label_issues
        split_counts = dict.fromkeys(ratios, 0)
        for row in frozen.rows:
            split_counts[row["split"]] += 1
        stratify_by, created_at = request.stratify_by, utcnow()
        facts = datasheet.Facts(
            name=request.name,
            manifest_id=manifest_id,
            seed=request.seed,
            spec=format_split_spec(ratios),
            selection=selection,
            created_by=actor,
            created_at=created_at,
            parent=parent.name if parent else None,
            frozen=frozen,
            split_counts=split_counts,
            balance=balance(frozen, ratios, stratify_by) if stratify_by else None,
            straddling=plan.straddling,
            scope=scope,
            catalog=catalog,
            body_key=body_key(manifest_id),
            parquet_key=parquet_key(manifest_id),
        )
        sheet_key = _store_datasheet(store, manifest_id, facts)
        report(4, "storing rows")
        stored = storing[0]()
    return Written(manifest_id, selection, split_counts, sheet_key, stored, created_at)


def _is_name_conflict(exc: IntegrityError) -> bool:
    message = str(exc.orig)
    return "uq_manifests_name" in message or "manifests.name" in message


def _record(
    session: Session,
    request: ManifestRequest,
    written: Written,
    checked: Checked,
    rows: int,
    actor: str | None,
) -> Manifest:
    """The manifest's record and its event; a name taken meanwhile is a clean conflict."""
    manifest_id, parent = written.manifest_id, checked.parent
    manifest = Manifest(
        name=request.name,
        content_hash=manifest_id,
        seed=request.seed,
        splits={"spec": format_split_spec(checked.ratios), "names": list(checked.ratios)},
        selection=written.selection,
        parent_id=parent.id if parent else None,
        row_count=rows,
        split_counts=written.split_counts,
        body_key=body_key(manifest_id),
        parquet_key=parquet_key(manifest_id),
        datasheet_key=written.datasheet_key,
        created_by=actor,
        created_at=written.created_at,
    )
    session.add(manifest)
    try:
        session.flush()
    except IntegrityError as exc:
        if _is_name_conflict(exc):
            raise ManifestExists(
                f"manifest {request.name!r} was created meanwhile; manifests are immutable, "
                "pick a new name"
            ) from None
        raise
    events.record(
        session,
        "manifest.created",
        "manifest",
        request.name,
        actor=actor,
        details={
            "id": manifest_id,
            "rows": rows,
            "splits": written.split_counts,
            "parent": parent.name if parent else None,
            "rows_stored": written.rows_stored,
        },
    )
    return manifest


def create_manifest(
    session: Session,
    request: ManifestRequest,
    *,
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

    def report(done: int, message: str) -> None:
        # Job progress is written from another connection; on SQLite it would wait for this
        # transaction's write lock, so every report comes before the first write.
        if progress is not None:
            progress(done, STAGES, message)

    checked = check_request(session, request)
    task = manifest_task(session, request.task, checked.batch_ids)
    report(0, "reading the catalog")
    frozen, roots = _read(session, task, request.query, checked)
    if request.exclude_label_issues is not None:
        frozen = _without_label_issues(session, frozen, request.exclude_label_issues, task)
    report(1, "assigning splits")
    plan = _split(session, frozen, request.seed, checked, roots)
    written = _write(
        session,
        request,
        task=task,
        frozen=frozen,
        plan=plan,
        checked=checked,
        actor=actor,
        store=store or get_store(),
        report=report,
    )
    return _record(session, request, written, checked, len(frozen.rows), actor)
