"""Label files (CSV, Label Studio JSON) into label versions, all or nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.catalog.models import QUARANTINED, Image, ImageLocation
from dataops.errors import DataopsError
from dataops.labeling import importers, importers_labelstudio
from dataops.labeling.cvat_import import import_cvat
from dataops.labeling.guideline_versions import get_guideline
from dataops.labeling.labels import (
    chunks,
)
from dataops.labeling.models import ACCEPTED, SUBMITTED
from dataops.labeling.path_map import mapped_uris, parse_path_map
from dataops.labeling.queues import check_connection
from dataops.labeling.schemas import ImportReport, LabelImportOptions, RowError
from dataops.labeling.store import store_imported_labels
from dataops.labeling.tasks import images_for_task_keys
from dataops.labeling.vendors import get_vendor


def _uri_candidates(uri: str, base_dir: Path | None) -> list[str]:
    """A uri as written, and for local paths the absolute path ingest would have recorded."""
    candidates = [uri]
    path_text = uri.removeprefix("file://") if uri.startswith("file://") else uri
    if "://" not in path_text and path_text:
        path = Path(path_text).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        for form in (str(path.absolute()), str(path.resolve())):
            if form not in candidates:
                candidates.append(form)
    return candidates


def _images_by_uri(session: Session, uris: Sequence[str]) -> dict[str, Image]:
    found: dict[str, Image] = {}
    for chunk in chunks(sorted(set(uris))):
        rows = session.execute(
            select(ImageLocation.uri, Image)
            .join(Image, Image.id == ImageLocation.image_id)
            .where(ImageLocation.uri.in_(chunk))
        )
        found.update((uri, image) for uri, image in rows)
        for image in session.scalars(select(Image).where(Image.uri.in_(chunk))):
            found.setdefault(image.uri, image)
    return found


def _images_by_task_key(session: Session, keys: Sequence[str]) -> dict[str, Image]:
    """Tasks dataops pushed name their image only by an opaque task key (labeling.tasks)."""
    if not keys:
        return {}
    refs = images_for_task_keys(session, keys)
    ids = sorted({ref.image_id for ref in refs.values()})
    by_id: dict[int, Image] = {}
    for chunk in chunks(ids):
        by_id.update((i.id, i) for i in session.scalars(select(Image).where(Image.id.in_(chunk))))
    return {key: by_id[ref.image_id] for key, ref in refs.items() if ref.image_id in by_id}


def _unknown_image(row: importers.LabelRow) -> str:
    if row.image_sha256:
        return (
            f"no image with sha256 {row.image_sha256} in the catalog; ingest it first "
            "(dataops ingest)"
        )
    ref = row.image_uri or ""
    if row.task_key and not ref:
        return (
            f"no task key {row.task_key} in this catalog: the task was not pushed by it; give "
            "data.image (with --path-map) or data.dataops_sha256"
        )
    hint = (
        "; map Label Studio's paths to where the files were ingested from with --path-map "
        "PREFIX=ROOT (HTTP: path_map), e.g. /data/upload/=/srv/label-studio/media/upload/"
        if ref.startswith(("/data/", "s3://", "gs://", "http://", "https://"))
        else ""
    )
    return (
        f"no image recorded at {ref}; give its sha256 or a path it was ingested from (see "
        f"`dataops images show` for its locations){hint}"
    )


def _resolve_images(
    session: Session,
    rows: Sequence[importers.LabelRow],
    base_dir: Path | None,
    path_map: Sequence[tuple[str, str]] = (),
) -> tuple[dict[int, Image], list[RowError]]:
    """Image per row position, by sha256, task key, or recorded location (through the path
    map); rows whose image is unknown or unusable become errors."""
    shas = sorted({r.image_sha256 for r in rows if r.image_sha256})
    by_sha: dict[str, Image] = {}
    for chunk in chunks(shas):
        by_sha.update(
            (i.sha256, i) for i in session.scalars(select(Image).where(Image.sha256.in_(chunk)))
        )
    by_key = _images_by_task_key(
        session, sorted({r.task_key for r in rows if r.task_key and not r.image_sha256})
    )
    candidates = {
        r.image_uri: [
            c
            for mapped in mapped_uris(r.image_uri, path_map)
            for c in _uri_candidates(mapped, base_dir)
        ]
        for r in rows
        if r.image_uri
    }
    by_uri = _images_by_uri(session, [c for cs in candidates.values() for c in cs])
    resolved: dict[int, Image] = {}
    errors: list[RowError] = []
    for position, row in enumerate(rows):
        ref = row.image_sha256 or row.image_uri or row.task_key or ""
        if row.image_sha256:
            image = by_sha.get(row.image_sha256)
        elif row.task_key and row.task_key in by_key:
            image = by_key[row.task_key]
        else:
            image = next(
                (by_uri[c] for c in candidates.get(row.image_uri or "", []) if c in by_uri), None
            )
        if image is None:
            message = _unknown_image(row)
        elif image.status == QUARANTINED:
            message = (
                f"image {image.sha256[:12]} is quarantined ({image.quarantine_reason}); "
                "quarantined images are not labeled — drop this row"
            )
        else:
            resolved[position] = image
            continue
        errors.append(
            RowError(row=row.row, line=row.line, field=row.image_field, value=ref, message=message)
        )
    return resolved, errors


def import_labels(
    session: Session,
    data: bytes,
    request: LabelImportOptions,
    *,
    filename: str,
    base_dir: Path | None = None,
    actor: str | None = None,
) -> ImportReport:
    """Import a label file, all or nothing: a CSV (``image,annotator,label``), a Label Studio
    JSON export, or a CVAT for images 1.1 XML export (``format`` cvat, or an ``.xml`` file).

    Every row is checked first (image known and usable, label valid for the guideline); any
    error means nothing is written and the report lists each problem. Re-importing a file
    creates nothing. ``accept`` stores labels vetted elsewhere as ``accepted``. The task
    defaults to the guideline's name, else ``default``. Relative paths in a CSV are read
    relative to ``base_dir`` (the file's folder). ``path_map`` (``PREFIX=ROOT`` entries) maps
    Label Studio's own image paths to the locations images were ingested from.
    """
    if request.format == "cvat" or (request.format is None and filename.lower().endswith(".xml")):
        return import_cvat(session, data, request, filename=filename, actor=actor)
    text = importers.decode(data, filename)
    chosen = request.format or importers.detect_format(filename, text)
    if chosen not in importers.FORMATS:
        raise DataopsError(
            f"{{format}} must be one of {', '.join(importers.FORMATS)}", fields=("format",)
        )
    guideline_row = get_guideline(session, request.guideline) if request.guideline else None
    vendor_id = get_vendor(session, request.vendor).id if request.vendor is not None else None
    pairs = parse_path_map(request.path_map)
    connection = request.connection
    if chosen == "labelstudio":
        connection = check_connection(connection)
    task_name = (request.task or (guideline_row.name if guideline_row else "default")).strip()
    if not task_name or len(task_name) > 128:
        raise DataopsError("{task} must be 1 to 128 characters", fields=("task",))
    parse = importers.parse_csv if chosen == "csv" else importers_labelstudio.parse_labelstudio
    parsed = parse(
        text,
        kind=guideline_row.kind if guideline_row else None,
        classes=list(guideline_row.classes) if guideline_row else None,
    )
    images, image_errors = _resolve_images(session, parsed.rows, base_dir, pairs)
    unique: dict[tuple[Any, ...], RowError] = {}
    for error in [*parsed.errors, *image_errors]:
        unique.setdefault((error.row, error.line, error.field, error.message), error)
    report = ImportReport(
        rows=parsed.annotations,
        skipped=parsed.skipped,
        errors=sorted(unique.values(), key=lambda e: (e.row, e.field)),
    )
    if report.errors:
        return report
    return store_imported_labels(
        session,
        parsed.rows,
        images,
        report,
        data=data,
        filename=filename,
        fmt=chosen,
        task=task_name,
        guideline=guideline_row,
        status=ACCEPTED if request.accept else SUBMITTED,
        vendor_id=vendor_id,
        connection=connection,
        actor=actor,
    )
