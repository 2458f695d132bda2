"""Parse label files into checked rows, without touching the DB: CSV here, Label Studio JSON
in :mod:`importers_labelstudio`, CVAT XML in :mod:`importers_cvat`.

Parsing never stops at the first bad row: every problem becomes a ``RowError`` that says where
it is and what to do, so a vendor can fix a whole file in one round. Only a file that cannot be
read at all (encoding, syntax, missing columns, a JSON_MIN export) raises ``LabelFileError``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dataops.database.dialect import as_utc
from dataops.errors import DataopsError
from dataops.labeling.errors import LabelFileError
from dataops.labeling.payloads import normalise_payload, text_problem
from dataops.labeling.schemas import RowError

FORMATS = ("csv", "labelstudio")
CSV_COLUMNS = ("image", "annotator", "label")
MAX_NAME_CHARS = 128
MAX_USER_ID = 2**31 - 1
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass(frozen=True)
class AnnotatorRef:
    """Who made a label, as far as the file says: a name, an email, a Label Studio user id."""

    name: str | None = None
    email: str | None = None
    ls_user_id: int | None = None


@dataclass
class LabelRow:
    row: int
    line: int | None
    image_sha256: str | None
    image_uri: str | None
    annotator: AnnotatorRef | None
    payload: dict[str, Any]
    # Label Studio's annotation id; CSV rows have none and are keyed by their content.
    annotation_id: str | None = None
    updated_at: datetime | None = None
    image_field: str = "image"
    # The task key of a task dataops pushed (``data.dataops_item``), looked up in task_keys.
    task_key: str | None = None


@dataclass
class ParsedFile:
    rows: list[LabelRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    skipped: int = 0
    annotations: int = 0


def shown(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LabelFileError(
            f"{what} is not UTF-8 text (byte {exc.start}); save it as UTF-8 and import again"
        ) from None


def detect_format(name: str, text: str) -> str:
    """By extension, else by content: JSON starts with '[' or '{'."""
    lowered = name.lower()
    if lowered.endswith(".json"):
        return "labelstudio"
    if lowered.endswith(".csv"):
        return "csv"
    return "labelstudio" if text.lstrip()[:1] in ("[", "{") else "csv"


def annotator_from_text(raw: str) -> AnnotatorRef | None:
    name = raw.strip()
    if not name:
        return None
    email = name.lower() if EMAIL.match(name) else None
    return AnnotatorRef(name=name, email=email)


def image_ref(raw: str) -> tuple[str | None, str | None]:
    ref = raw.strip()
    if SHA256.match(ref):
        return ref.lower(), None
    return None, ref


def parse_csv(
    text: str, *, kind: str | None = None, classes: Sequence[str] | None = None
) -> ParsedFile:
    """Rows of ``image,annotator,label``; image is a sha256 or any recorded location/uri."""
    if kind == "detection":
        raise LabelFileError(
            "CSV rows carry one class per image (classification); import detection boxes as a "
            "Label Studio JSON export"
        )
    reader = csv.reader(io.StringIO(text, newline=""))
    parsed = ParsedFile()
    try:
        header = next(reader, None)
        if header is None:
            raise LabelFileError(f"the CSV is empty; its header must be {','.join(CSV_COLUMNS)}")
        names = [h.strip().lower() for h in header]
        missing = [c for c in CSV_COLUMNS if c not in names]
        if missing:
            raise LabelFileError(
                f"the CSV header lacks {', '.join(missing)}; expected columns "
                f"{','.join(CSV_COLUMNS)} (image = sha256 or path/uri, annotator = name or "
                "email, label = class name)"
            )
        duplicated = sorted({n for n in names if n in CSV_COLUMNS and names.count(n) > 1})
        if duplicated:
            raise LabelFileError(f"the CSV header repeats {', '.join(duplicated)}")
        index = {c: names.index(c) for c in CSV_COLUMNS}
        previous_line = reader.line_num
        row_number = 0
        for record in reader:
            line = previous_line + 1
            previous_line = reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            row_number += 1
            _csv_row(parsed, record, row_number, line, len(names), index, classes)
    except csv.Error as exc:
        raise LabelFileError(f"the CSV cannot be read near line {reader.line_num}: {exc}") from None
    return parsed


def _csv_row(
    parsed: ParsedFile,
    record: list[str],
    row: int,
    line: int,
    width: int,
    index: dict[str, int],
    classes: Sequence[str] | None,
) -> None:
    parsed.annotations += 1

    def fail(column: str, value: object, message: str) -> None:
        parsed.errors.append(
            RowError(row=row, line=line, field=column, value=shown(value), message=message)
        )

    if len(record) > width:
        fail(
            "",
            ",".join(record),
            f"the row has {len(record)} fields but the header {width}; quote values that "
            'contain commas ("a, b")',
        )
        return
    cells = {c: (record[i] if i < len(record) else "") for c, i in index.items()}
    ok = True
    image_sha, image_uri = image_ref(cells["image"])
    if not (image_sha or image_uri):
        fail("image", cells["image"], "empty image: give the image's sha256 or its path/uri")
        ok = False
    elif image_uri and (problem := text_problem(image_uri)):
        fail("image", image_uri, f"the image reference {problem}")
        ok = False
    annotator = annotator_from_text(cells["annotator"])
    if annotator and len(cells["annotator"].strip()) > MAX_NAME_CHARS:
        fail("annotator", cells["annotator"], f"annotator is longer than {MAX_NAME_CHARS} chars")
        ok = False
    elif annotator and (problem := text_problem(cells["annotator"].strip())):
        fail("annotator", cells["annotator"], f"the annotator {problem}")
        ok = False
    try:
        payload = normalise_payload(
            {"class": cells["label"]}, kind="classification", classes=classes
        )
    except DataopsError as exc:
        hint = " (fix the label or publish a guideline version that defines it)"
        fail("label", cells["label"], f"{exc}{hint if classes is not None else ''}")
        ok = False
    if ok:
        parsed.rows.append(
            LabelRow(
                row=row,
                line=line,
                image_sha256=image_sha,
                image_uri=image_uri,
                annotator=annotator,
                payload=payload,
            )
        )


def parse_timestamp(value: object) -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime; ValueError when it is not one."""
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 timestamp, got {shown(value)}")
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return as_utc(parsed)
