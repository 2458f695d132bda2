"""``dataops manifest export``: a stored manifest written in a format other tools read.

Formats: ``folder`` (ImageFolder layout, image classes), ``coco`` (boxes), ``rows``
(rows-only ``rows.jsonl`` and ``rows.parquet`` beside a copy of the canonical body), ``voc``
(Pascal VOC, boxes), ``cvat`` (CVAT for images 1.1 XML, boxes or image classes), ``yolo``
(ultralytics detection layout), ``yolo-cls`` (ultralytics classification folders) and ``hf``
(Hugging Face ``datasets``: per-split Parquet with images and typed labels). A format
that cannot hold the manifest's labels is refused before anything is written. Class lists
come from the guidelines the labels were made under, newest version first, as recorded in the
manifest when it was made (see ``classes.py``), so class folders and COCO category ids do not
depend on which classes a manifest version happens to contain.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from dataops.errors import DataopsError
from dataops.manifests.body import RowRecord
from dataops.manifests.classes import manifest_classes
from dataops.manifests.errors import escaped
from dataops.manifests.export import ExportCounts, export_coco, export_folder
from dataops.manifests.export_target import staged_export
from dataops.manifests.files import local_copy, locate_image
from dataops.manifests.formats_cvat import export_cvat
from dataops.manifests.formats_hf import export_hf
from dataops.manifests.formats_voc import export_voc
from dataops.manifests.formats_yolo import export_yolo, export_yolo_cls
from dataops.manifests.models import Manifest
from dataops.manifests.rows_files import write_rows_files
from dataops.manifests.service import get_manifest, read_rows
from dataops.storage import BlobStore, get_store

FORMATS = ("folder", "coco", "rows", "voc", "cvat", "yolo", "yolo-cls", "hf")
BODY_COPY = "manifest.jsonl"


def _info(manifest: Manifest) -> dict[str, Any]:
    return {
        "description": f"dataops manifest {manifest.name}",
        "version": manifest.content_hash,
        "year": manifest.created_at.year,
        "contributor": manifest.created_by or "",
        "date_created": manifest.created_at.isoformat(),
        "url": "",
    }


def _export_rows(
    manifest: Manifest, store: BlobStore, rows: Sequence[RowRecord], destination: Path
) -> ExportCounts:
    marker = {"format": "rows", "manifest": manifest.name, "id": manifest.content_hash}
    with staged_export(destination, marker) as staged, local_copy(store, manifest.body_key) as body:
        shutil.copyfile(body, staged / BODY_COPY)
        write_rows_files(staged, rows, body)
    return ExportCounts()


def export_manifest(
    session: Session, ref: str, destination: str | os.PathLike[str], *, fmt: str
) -> dict[str, Any]:
    """Write a manifest in one of ``FORMATS`` into ``destination``."""
    if fmt not in FORMATS:
        raise DataopsError(
            f"{{format}} must be one of {', '.join(FORMATS)}, got {escaped(repr(fmt))}",
            fields=("format",),
        )
    manifest = get_manifest(session, ref)
    store = get_store()
    rows = read_rows(manifest, store)
    out = Path(destination).absolute()
    marker = {"manifest": manifest.name, "id": manifest.content_hash}
    classes = manifest_classes(session, manifest, rows)

    def locate(row: RowRecord) -> str | bytes:
        return locate_image(store, row)

    if fmt == "folder":
        splits = list(manifest.split_counts or {}) or list(manifest.splits or {})
        counts = export_folder(rows, out, locate, classes=classes, splits=splits, marker=marker)
    elif fmt == "coco":
        counts = export_coco(
            rows, out, locate, classes=classes, info=_info(manifest), marker=marker
        )
    elif fmt == "voc":
        counts = export_voc(rows, out, locate, classes=classes, marker=marker)
    elif fmt == "cvat":
        counts = export_cvat(rows, out, locate, classes=classes, name=manifest.name, marker=marker)
    elif fmt == "yolo":
        counts = export_yolo(rows, out, locate, classes=classes, marker=marker)
    elif fmt == "yolo-cls":
        splits = list(manifest.split_counts or {}) or list(manifest.splits or {})
        counts = export_yolo_cls(rows, out, locate, classes=classes, splits=splits, marker=marker)
    elif fmt == "hf":
        counts = export_hf(rows, out, locate, classes=classes, name=manifest.name, marker=marker)
    else:
        counts = _export_rows(manifest, store, rows, out)
    return {
        "name": manifest.name,
        "id": manifest.content_hash,
        "format": fmt,
        "out": str(out),
        "rows": len(rows),
        **vars(counts),
    }
