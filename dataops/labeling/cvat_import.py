"""``dataops labels import --format cvat``: labels made in CVAT, all or nothing.

Parsing is :mod:`dataops.labeling.importers_cvat`; this module finds the images (sha256 names
from a dataops export, else the file name against recorded locations), checks that CVAT saw
them at their upright size, and stores the labels as one annotator's, like any other import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dataops.catalog.models import QUARANTINED, Image, ImageLocation
from dataops.errors import DataopsError
from dataops.labeling import importers
from dataops.labeling.guideline_versions import get_guideline
from dataops.labeling.importers_cvat import FORMAT, parse_cvat
from dataops.labeling.labels import chunks
from dataops.labeling.models import ACCEPTED, SUBMITTED
from dataops.labeling.schemas import ImportReport, LabelImportOptions, RowError
from dataops.labeling.store import store_imported_labels
from dataops.labeling.vendors import get_vendor

SOURCE_CVAT = "cvat"


def _by_name(session: Session, names: Sequence[str]) -> dict[str, set[int]]:
    """Image ids whose recorded locations end in ``/<name>`` (or are ``name``), per name."""
    found: dict[str, set[int]] = {name: set() for name in names}
    for chunk in chunks(sorted(set(names))):
        suffixes = [ImageLocation.uri.endswith(f"/{name}", autoescape=True) for name in chunk]
        rows = session.execute(
            select(ImageLocation.uri, ImageLocation.image_id).where(
                or_(ImageLocation.uri.in_(chunk), *suffixes)
            )
        )
        for uri, image_id in rows:
            for name in chunk:
                if uri == name or uri.endswith(f"/{name}"):
                    found[name].add(image_id)
    return found


def _resolve(
    session: Session, rows: Sequence[importers.LabelRow], sizes: dict[int, tuple[int, int]]
) -> tuple[dict[int, Image], list[RowError]]:
    names = _by_name(session, [r.image_uri for r in rows if r.image_uri])
    shas = sorted({r.image_sha256 for r in rows if r.image_sha256})
    ids = sorted({i for found in names.values() for i in found})
    images: dict[Any, Image] = {}
    for chunk in chunks(shas):
        images.update(
            (i.sha256, i) for i in session.scalars(select(Image).where(Image.sha256.in_(chunk)))
        )
    for chunk in chunks(ids):
        images.update((i.id, i) for i in session.scalars(select(Image).where(Image.id.in_(chunk))))
    resolved: dict[int, Image] = {}
    errors: list[RowError] = []
    for position, row in enumerate(rows):
        ref = row.image_sha256 or row.image_uri or ""
        image = None
        if row.image_sha256:
            image = images.get(row.image_sha256)
            message = f"no image with sha256 {row.image_sha256} in the catalog; ingest it first"
        else:
            matches = names.get(ref, set())
            if len(matches) == 1:
                image = images.get(next(iter(matches)))
            message = (
                f"{len(matches)} catalog images were ingested from files named {ref}; export the "
                "images with `dataops manifest export --format cvat` (sha256 names) and label those"
                if matches
                else f"no image was ingested from a file named {ref}; ingest it first"
            )
        if image is not None and image.status == QUARANTINED:
            message = f"image {image.sha256[:12]} is quarantined; drop this image"
            image = None
        if image is not None and (image.width, image.height) != sizes[row.row]:
            width, height = sizes[row.row]
            message = (
                f"CVAT shows this image as {width}x{height} but it is {image.width}x"
                f"{image.height} upright; label the upright images that `dataops manifest "
                "export --format cvat` writes"
            )
            image = None
        if image is None:
            errors.append(RowError(row=row.row, field="name", value=ref, message=message))
        else:
            resolved[position] = image
    return resolved, errors


def import_cvat(
    session: Session,
    data: bytes,
    request: LabelImportOptions,
    *,
    filename: str,
    actor: str | None = None,
) -> ImportReport:
    """Import a CVAT for images 1.1 XML export as ``request.annotator``'s labels, all or
    nothing."""
    who = importers.annotator_from_text(request.annotator or "")
    if who is None:
        raise DataopsError(
            "a CVAT export does not say who labeled: give the annotator's name or email "
            "({annotator})",
            fields=("annotator",),
        )
    text = importers.decode(data, filename)
    guideline_row = get_guideline(session, request.guideline) if request.guideline else None
    vendor_id = get_vendor(session, request.vendor).id if request.vendor is not None else None
    task_name = (request.task or (guideline_row.name if guideline_row else "default")).strip()
    if not task_name or len(task_name) > 128:
        raise DataopsError("{task} must be 1 to 128 characters", fields=("task",))
    parsed = parse_cvat(
        text,
        annotator=who,
        kind=guideline_row.kind if guideline_row else None,
        classes=list(guideline_row.classes) if guideline_row else None,
    )
    images, image_errors = _resolve(session, parsed.rows, parsed.sizes)
    report = ImportReport(
        rows=parsed.annotations,
        skipped=parsed.skipped,
        errors=sorted([*parsed.errors, *image_errors], key=lambda e: (e.row, e.field)),
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
        fmt=FORMAT,
        task=task_name,
        guideline=guideline_row,
        status=ACCEPTED if request.accept else SUBMITTED,
        vendor_id=vendor_id,
        content_source=SOURCE_CVAT,
        details={"annotator": who.name},
        actor=actor,
    )
