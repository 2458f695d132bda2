"""A checked label file's rows stored as label versions, whatever format they came in."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from dataops.catalog.models import Image
from dataops.events import service as events
from dataops.labeling import importers
from dataops.labeling.annotators import get_or_create_annotator
from dataops.labeling.guideline_versions import guideline_ref
from dataops.labeling.labels import (
    SOURCE_CSV,
    SOURCE_LABELSTUDIO,
    add_label_version,
    labelstudio_source_id,
)
from dataops.labeling.models import Guideline
from dataops.labeling.schemas import DEFAULT_CONNECTION, ImportReport


def content_source_id(
    image: Image, annotator_id: int | None, payload: dict[str, Any], task: str
) -> str:
    """CSV and CVAT rows carry no id: the same label of the same image by the same person is
    one row."""
    body = json.dumps([image.sha256, annotator_id, payload, task], sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def store_imported_labels(
    session: Session,
    rows: Sequence[importers.LabelRow],
    images: Mapping[int, Image],
    report: ImportReport,
    *,
    data: bytes,
    filename: str,
    fmt: str,
    task: str,
    guideline: Guideline | None,
    status: str,
    vendor_id: int | None,
    connection: str = DEFAULT_CONNECTION,
    content_source: str = SOURCE_CSV,
    details: Mapping[str, Any] | None = None,
    actor: str | None = None,
) -> ImportReport:
    """Store a checked file's rows (``images`` by row position) and record one
    ``labels.imported`` event; ``report`` gains the created and existing counts.

    Rows with a Label Studio annotation id are keyed by it; rows without one (CSV, CVAT) by
    their content under ``content_source``, so the same label imported twice is stored once.
    """
    annotators: dict[importers.AnnotatorRef, int] = {}
    for position, row in enumerate(rows):
        annotator_id: int | None = None
        if row.annotator is not None:
            if row.annotator not in annotators:
                annotators[row.annotator] = get_or_create_annotator(
                    session,
                    connection=connection if row.annotator.ls_user_id is not None else None,
                    ls_user_id=row.annotator.ls_user_id,
                    email=row.annotator.email,
                    name=row.annotator.name,
                    vendor_id=vendor_id,
                    mapped_by="import",
                    actor=actor,
                ).id
            annotator_id = annotators[row.annotator]
        image = images[position]
        if row.annotation_id is None:
            source = content_source
            source_id = content_source_id(image, annotator_id, row.payload, task)
        else:
            source = SOURCE_LABELSTUDIO
            source_id = labelstudio_source_id(connection, row.annotation_id)
        _, created = add_label_version(
            session,
            image_id=image.id,
            payload=row.payload,
            source=source,
            source_id=source_id,
            source_updated_at=row.updated_at,
            annotator_id=annotator_id,
            guideline_id=guideline.id if guideline else None,
            task=task,
            status=status,
            actor=actor,
        )
        if created:
            report.created += 1
        else:
            report.existing += 1
    events.record(
        session,
        "labels.imported",
        "label_file",
        hashlib.sha256(data).hexdigest(),
        actor=actor,
        details={
            "file": filename,
            "format": fmt,
            "task": task,
            **(details or {}),
            "guideline": guideline_ref(guideline) if guideline else None,
            "status": status,
            **report.model_dump(include={"rows", "created", "existing", "skipped"}),
        },
    )
    return report
