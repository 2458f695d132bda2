"""Verifying a manifest: does every stored file and image still hash to what it recorded?

Problems are reported, never raised, so a caller sees them all at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dataops.errors import DataopsError
from dataops.manifests import models, rows_files
from dataops.manifests.body import RowRecord, verify_body, verify_parquet
from dataops.manifests.files import image_bytes, image_location, local_copy
from dataops.manifests.models import Manifest
from dataops.manifests.schemas import ImageProblem, VerifyReport
from dataops.manifests.service import get_manifest, recorded_rows_files
from dataops.storage import BlobStore, get_store

Progress = Callable[[int, int, str], None]


def _check_image(store: BlobStore, row: RowRecord) -> ImageProblem | None:
    location = image_location(store, row)
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
    session: Session, manifest: Manifest, rows: Sequence[RowRecord]
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
    rows: list[RowRecord] = []
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
    for file_name, entry in recorded_rows_files(manifest).items():
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
