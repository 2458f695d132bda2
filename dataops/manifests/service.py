"""Manifests in the catalog: find them, describe them, read their stored rows and datasheet.

A manifest holds, for every labeled, non-quarantined image in scope, the accepted label
version of one task and a split (see :mod:`dataops.manifests.create`). Its id is the sha256
of the canonical body (:mod:`dataops.manifests.body`). The JSONL body and its Parquet copy
live in the blob store under ``manifests/<hex>/``; the rows live in ``manifest_rows`` once per
content hash, so a second name for the same content shares them. Manifests and their rows
are append-only: the database refuses UPDATE and DELETE on both tables.

Like every service, these functions take the caller's Session, flush and never commit.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from dataops.errors import DataopsError, NotFound
from dataops.manifests import models, rows_files
from dataops.manifests.body import RowRecord, verify_body
from dataops.manifests.errors import ManifestNotFound, ManifestTampered
from dataops.manifests.files import local_copy
from dataops.manifests.models import Manifest
from dataops.manifests.schemas import (
    ManifestDetail,
    ManifestListItem,
    ManifestOut,
    ManifestPage,
    RowOut,
)
from dataops.storage import BlobStore, get_store

KEY_PREFIX = "manifests"
_HEX_PREFIX = re.compile(r"[0-9a-f]{8,64}")


# --- keys ---------------------------------------------------------------------------------------


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


# --- reads --------------------------------------------------------------------------------------


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


def manifest_page(session: Session, *, limit: int = 50, offset: int = 0) -> ManifestPage:
    """One page of manifests, newest first, with their parents' names: one query (the
    primary key orders it), however many manifests were ever frozen."""
    parent = aliased(Manifest)
    rows = session.execute(
        select(Manifest, parent.name)
        .outerjoin(parent, parent.id == Manifest.parent_id)
        .order_by(Manifest.id.desc())
        .limit(limit + 1)
        .offset(offset)
    ).all()
    items = [
        ManifestListItem(
            name=m.name,
            id=m.content_hash,
            rows=m.row_count,
            splits=dict(m.split_counts),
            parent=parent_name,
            created_by=m.created_by,
            created_at=m.created_at,
        )
        for m, parent_name in rows[:limit]
    ]
    return ManifestPage(manifests=items, limit=limit, offset=offset, more=len(rows) > limit)


def body_location(manifest: Manifest, store: BlobStore | None = None) -> str:
    """A local path when the store is on disk, else the store URL of the body."""
    store = store or get_store()
    return store.local_path(manifest.body_key) or f"{store.url}/{manifest.body_key}"


def _parent_name(session: Session, manifest: Manifest) -> str | None:
    if manifest.parent_id is None:
        return None
    return session.scalar(select(Manifest.name).where(Manifest.id == manifest.parent_id))


def recorded_rows_files(manifest: Manifest) -> dict[str, dict[str, str]]:
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
            for name, entry in recorded_rows_files(manifest).items()
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


def manifest_splits(session: Session, ref: str) -> dict[int, str]:
    """Image id -> split of a manifest, from its database rows (for leak checks elsewhere)."""
    manifest = get_manifest(session, ref)
    return dict(
        session.execute(
            select(models.ManifestRow.image_id, models.ManifestRow.split).where(
                models.ManifestRow.content_hash == manifest.content_hash
            )
        ).all()
    )


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


def read_rows(manifest: Manifest, store: BlobStore | None = None) -> list[RowRecord]:
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
