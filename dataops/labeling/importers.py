"""Parse label files (CSV, Label Studio JSON export) into checked rows, without touching the DB.

Parsing never stops at the first bad row: every problem becomes a ``RowError`` that says where
it is and what to do, so a vendor can fix a whole file in one round. Only a file that cannot be
read at all (encoding, syntax, missing columns, a JSON_MIN export) raises ``LabelFileError``.

Nothing is dropped silently. Of a Label Studio annotation's results, ``choices`` become a class,
``rectanglelabels`` and ``labels`` on a rectangle (``<Rectangle>`` + ``<Labels>``) become
boxes; every other result type (polygons, key points, brushes, unlabeled rectangles, free text,
ratings, ...) is an error of its row, so the file is refused rather than stored as "no objects"
or as a class with its other half missing.

Label Studio's own image paths are matched through a path map (``PREFIX=ROOT``): a task whose
``data.image`` starts with PREFIX is looked up as ROOT + the rest. ``/data/local-files/?d=PATH``
is read as ``/data/local-files/PATH`` (URL-decoded), and ``http(s)://host/data/...`` as
``/data/...``, so one prefix covers every form.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from dataops.errors import DataopsError
from dataops.labeling.errors import LabelFileError
from dataops.labeling.schemas import RowError, normalise_payload, text_problem

FORMATS = ("csv", "labelstudio")
CSV_COLUMNS = ("image", "annotator", "label")
MAX_NAME_CHARS = 128
MAX_USER_ID = 2**31 - 1
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
# Task data field holding the task key dataops pushed (an opaque token, mapped in task_keys).
TASK_KEY_FIELD = "dataops_item"
MAX_TASK_KEY_CHARS = 64
_LOCAL_FILES = "/data/local-files/"
_BOXES = ("rectanglelabels", "labels")
_NOT_A_BOX = (
    "dataops stores boxes (x, y, w, h) and would lose its shape; draw rectangles "
    "(<RectangleLabels>, or <Rectangle> with <Labels>) or convert these regions to boxes, then "
    "import again"
)
_REFUSED = {
    "polygonlabels": f"a polygon is not imported: {_NOT_A_BOX}",
    "polygon": f"a polygon is not imported: {_NOT_A_BOX}",
    "ellipselabels": f"an ellipse is not imported: {_NOT_A_BOX}",
    "ellipse": f"an ellipse is not imported: {_NOT_A_BOX}",
    "keypointlabels": "a key point is not imported: dataops stores classes and boxes",
    "keypoint": "a key point is not imported: dataops stores classes and boxes",
    "brushlabels": "a brush mask is not imported: dataops stores classes and boxes",
    "brush": "a brush mask is not imported: dataops stores classes and boxes",
    "rectangle": "a box without a label: give it exactly one label in Label Studio",
}


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


def _shown(value: object) -> str:
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


def _annotator_from_text(raw: str) -> AnnotatorRef | None:
    name = raw.strip()
    if not name:
        return None
    email = name.lower() if _EMAIL.match(name) else None
    return AnnotatorRef(name=name, email=email)


def _image_ref(raw: str) -> tuple[str | None, str | None]:
    ref = raw.strip()
    if _SHA256.match(ref):
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
            RowError(row=row, line=line, field=column, value=_shown(value), message=message)
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
    image_sha, image_uri = _image_ref(cells["image"])
    if not (image_sha or image_uri):
        fail("image", cells["image"], "empty image: give the image's sha256 or its path/uri")
        ok = False
    elif image_uri and (problem := text_problem(image_uri)):
        fail("image", image_uri, f"the image reference {problem}")
        ok = False
    annotator = _annotator_from_text(cells["annotator"])
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
        raise ValueError(f"expected an ISO 8601 timestamp, got {_shown(value)}")
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _user_id(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("a user id is a number")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not 0 < value <= MAX_USER_ID:
        raise ValueError(f"a Label Studio user id is a positive number, got {_shown(value)}")
    return value


def _completed_by(value: object) -> AnnotatorRef | None:
    """``completed_by`` is a user id, or in older exports an object with id and email."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return AnnotatorRef(ls_user_id=_user_id(value))
    user_id = _user_id(value["id"]) if value.get("id") is not None else None
    email = value.get("email")
    if email is not None and (
        not isinstance(email, str) or not _EMAIL.match(email.strip()) or text_problem(email)
    ):
        raise ValueError(f"completed_by.email is not an email address: {_shown(email)}")
    if len(email or "") > MAX_NAME_CHARS:
        raise ValueError(f"completed_by.email is longer than {MAX_NAME_CHARS} characters")
    if user_id is None and email is None:
        raise ValueError("completed_by has neither an id nor an email")
    clean = email.strip().lower() if email else None
    return AnnotatorRef(name=clean, email=clean, ls_user_id=user_id)


class _RowProblem(Exception):
    def __init__(self, path: str, value: object, message: str) -> None:
        super().__init__(message)
        self.path, self.value, self.message = path, value, message


def _percent(value: dict[str, Any], key: str, path: str) -> float:
    number = value.get(key)
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise _RowProblem(f"{path}.{key}", number, f"{key} must be a number (percent of the image)")
    result = float(number)
    if not math.isfinite(result):
        raise _RowProblem(f"{path}.{key}", number, f"{key} must be finite")
    return result


def _clamp(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def _ls_box(value: dict[str, Any], path: str, key: str) -> dict[str, Any]:
    labels = value.get(key)
    if not isinstance(labels, list) or len(labels) != 1:
        raise _RowProblem(f"{path}.{key}", labels, "each box needs exactly one label; relabel it")
    rotation = value.get("rotation") or 0
    if rotation:
        raise _RowProblem(
            f"{path}.rotation",
            rotation,
            "rotated boxes cannot be stored as x, y, w, h; redraw the box without rotation",
        )
    x, y, w, h = (_percent(value, key, path) for key in ("x", "y", "width", "height"))
    # Label Studio stores percentages and lets a box overhang by rounding: clamp to the image.
    left, top = _clamp(x / 100.0), _clamp(y / 100.0)
    right, bottom = _clamp((x + w) / 100.0), _clamp((y + h) / 100.0)
    return {"class": labels[0], "x": left, "y": top, "w": right - left, "h": bottom - top}


def _ls_payload(result: object, kind: str | None, path: str) -> dict[str, Any]:
    """Turn an annotation's ``result`` list into a payload; any problem is a _RowProblem."""
    if not isinstance(result, list):
        raise _RowProblem(f"{path}.result", result, "result must be a list of regions")
    choices: list[tuple[str, Any]] = []
    boxes: list[tuple[str, dict[str, Any], str]] = []
    for position, item in enumerate(result):
        where = f"{path}.result[{position}]"
        if not isinstance(item, dict):
            raise _RowProblem(where, item, "each result item must be an object")
        value = item.get("value")
        kind_of_item = item.get("type")
        if kind_of_item not in ("choices", *_BOXES):
            raise _RowProblem(f"{where}.type", kind_of_item, _unsupported(kind_of_item))
        if not isinstance(value, dict):
            raise _RowProblem(f"{where}.value", value, "value must be an object")
        if kind_of_item == "choices":
            choices.append((where, value.get("choices")))
        elif kind_of_item == "labels" and not all(k in value for k in ("x", "y", "width")):
            raise _RowProblem(
                f"{where}.value",
                sorted(value),
                "labels without a rectangle (x, y, width, height) are not boxes: label "
                "rectangles (<Rectangle> with <Labels>) or use <Choices> for a class",
            )
        else:
            boxes.append((f"{where}.value", value, str(kind_of_item)))
    if choices and boxes:
        raise _RowProblem(
            f"{path}.result", None, "has both choices and boxes; dataops imports one kind per task"
        )
    found = "detection" if boxes else "classification" if choices else kind
    if found is None:
        raise _RowProblem(
            f"{path}.result",
            [],
            "empty annotation: pass --guideline so dataops knows whether it means 'no objects' "
            "(detection) or is missing its class",
        )
    if kind is not None and found != kind:
        raise _RowProblem(f"{path}.result", None, f"the guideline asks for {kind} labels")
    if found == "detection":
        return {"boxes": [_ls_box(value, where, key) for where, value, key in boxes]}
    picked = [
        c for _, values in choices for c in (values if isinstance(values, list) else [values])
    ]
    if len(picked) != 1:
        where = choices[0][0] if choices else f"{path}.result"
        raise _RowProblem(
            f"{where}.value.choices", picked, f"pick exactly one class, found {len(picked)}"
        )
    return {"class": picked[0]}


def _unsupported(kind: object) -> str:
    if isinstance(kind, str) and kind in _REFUSED:
        return _REFUSED[kind]
    return (
        f"result type {_shown(kind)} is not imported (dataops imports choices, "
        "rectanglelabels, and labels on a rectangle); the file is refused so nothing is lost: "
        "remove those results or that control from the export, then import again"
    )


def _annotation_id(value: object) -> str:
    if isinstance(value, bool):
        raise ValueError("an annotation id is a number")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or value < 0 or value > 10**18:
        raise ValueError(
            f"an annotation id is a non-negative number, got {_shown(value)} "
            "(export as JSON, not JSON_MIN, so annotations keep their ids)"
        )
    return str(value)


@dataclass(frozen=True)
class TaskImage:
    """How a task names its image: a sha256, a task key dataops pushed, or a location."""

    sha256: str | None
    uri: str | None
    field: str
    task_key: str | None = None


def _task_image(data: dict[str, Any]) -> TaskImage:
    sha = data.get("dataops_sha256")
    if sha is not None:
        if not isinstance(sha, str) or not _SHA256.match(sha.strip()):
            raise _RowProblem("data.dataops_sha256", sha, "must be the image's 64-hex sha256")
        return TaskImage(sha.strip().lower(), None, "data.dataops_sha256")
    key = data.get(TASK_KEY_FIELD)
    if key is not None and (
        not isinstance(key, str)
        or not key.strip()
        or len(key) > MAX_TASK_KEY_CHARS
        or text_problem(key)
    ):
        raise _RowProblem(
            f"data.{TASK_KEY_FIELD}", key, "must be the task key dataops pushed with the task"
        )
    raw = data.get("image")
    image = raw.strip() if isinstance(raw, str) and raw.strip() else None
    if image is not None and (problem := text_problem(image)):
        raise _RowProblem("data.image", raw, f"the image reference {problem}")
    if key is not None:
        return TaskImage(None, image, f"data.{TASK_KEY_FIELD}", key.strip())
    if image is None:
        raise _RowProblem(
            "data.image",
            raw,
            "the task names no image: add data.dataops_sha256 or data.image (a recorded uri)",
        )
    return TaskImage(None, image, "data.image")


def parse_path_map(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``PREFIX=ROOT`` options as pairs; the first ``=`` separates them."""
    pairs: list[tuple[str, str]] = []
    for spec in specs:
        prefix, sep, root = spec.partition("=")
        if not sep or not prefix.strip() or not root.strip() or text_problem(spec):
            raise DataopsError(
                f"path_map entries are PREFIX=ROOT, got {spec!r} (for example "
                "/data/upload/=/srv/label-studio/media/upload/ or "
                "/data/local-files/=/mnt/images/)"
            )
        pairs.append((prefix.strip(), root.strip()))
    return pairs


def labelstudio_path(uri: str) -> str:
    """Label Studio's forms of one file as one path: ``http(s)://host/data/...`` becomes
    ``/data/...`` and ``/data/local-files/?d=PATH`` becomes ``/data/local-files/PATH``."""
    text = uri
    if text.startswith(("http://", "https://")):
        parts = urlsplit(text)
        if parts.path.startswith("/data/"):
            text = parts.path + (f"?{parts.query}" if parts.query else "")
    if text.startswith(_LOCAL_FILES + "?d="):
        text = _LOCAL_FILES + unquote(text[len(_LOCAL_FILES) + 3 :]).lstrip("/")
    return text


def mapped_uris(uri: str, path_map: Sequence[tuple[str, str]]) -> list[str]:
    """Every location a task's image may be recorded at: as written, and through the map."""
    path = labelstudio_path(uri)
    out = [uri, path]
    for prefix, root in path_map:
        # The one-path form first, so /data/local-files/ maps the decoded ?d= path.
        form = next((f for f in (path, uri) if f.startswith(prefix)), None)
        if form is not None:
            out.append(root + form[len(prefix) :])
    return list(dict.fromkeys(out))


def parse_labelstudio(
    text: str, *, kind: str | None = None, classes: Sequence[str] | None = None
) -> ParsedFile:
    """A Label Studio JSON export: a list of tasks, each with ``data`` and ``annotations``.

    Cancelled (skipped) annotations are counted as skipped, not imported. Tasks without
    annotations (``download_all_tasks=true`` exports) contribute nothing.
    """
    try:
        document = json.loads(text)
    except RecursionError:
        raise LabelFileError("the JSON is nested too deeply to be a Label Studio export") from None
    except ValueError as exc:
        raise LabelFileError(f"not a JSON document: {exc}") from None
    if not isinstance(document, list):
        raise LabelFileError(
            "a Label Studio export is a JSON list of tasks; export the project as JSON "
            "(Export → JSON) and import that file"
        )
    if document and all(
        isinstance(t, dict) and "data" not in t and "annotations" not in t for t in document
    ):
        raise LabelFileError(
            "this is a JSON_MIN export (flat rows without data and annotations): it keeps one "
            "annotation per task and no annotation ids, so dataops does not import it; export "
            "the project as JSON (Export → JSON) and import that file"
        )
    parsed = ParsedFile()
    for position, task in enumerate(document, start=1):
        _ls_task(parsed, task, position, kind, classes)
    return parsed


def _ls_task(
    parsed: ParsedFile,
    task: object,
    row: int,
    kind: str | None,
    classes: Sequence[str] | None,
) -> None:
    def fail(path: str, value: object, message: str) -> None:
        parsed.errors.append(RowError(row=row, field=path, value=_shown(value), message=message))

    if not isinstance(task, dict):
        fail("", task, "each task must be an object with data and annotations")
        return
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        fail("annotations", annotations, "annotations must be a list")
        return
    data = task.get("data")
    if not isinstance(data, dict):
        fail("data", data, "the task has no data object naming its image")
        return
    if not annotations:
        return
    try:
        image = _task_image(data)
    except _RowProblem as problem:
        fail(problem.path, problem.value, problem.message)
        return
    for number, annotation in enumerate(annotations):
        path = f"annotations[{number}]"
        parsed.annotations += 1
        if not isinstance(annotation, dict):
            fail(path, annotation, "each annotation must be an object")
            continue
        if annotation.get("was_cancelled") is True:
            parsed.skipped += 1
            continue
        try:
            parsed.rows.append(_ls_row(annotation, path, row, image, kind, classes))
        except _RowProblem as problem:
            fail(problem.path, problem.value, problem.message)


def _ls_row(
    annotation: dict[str, Any],
    path: str,
    row: int,
    image: TaskImage,
    kind: str | None,
    classes: Sequence[str] | None,
) -> LabelRow:
    try:
        annotation_id = _annotation_id(annotation.get("id"))
    except ValueError as exc:
        raise _RowProblem(f"{path}.id", annotation.get("id"), str(exc)) from None
    stamp = annotation.get("updated_at") or annotation.get("created_at")
    try:
        updated_at = parse_timestamp(stamp) if stamp is not None else None
    except (ValueError, OverflowError) as exc:
        raise _RowProblem(f"{path}.updated_at", stamp, f"not a timestamp: {exc}") from None
    try:
        annotator = _completed_by(annotation.get("completed_by"))
    except ValueError as exc:
        raise _RowProblem(
            f"{path}.completed_by", annotation.get("completed_by"), str(exc)
        ) from None
    raw = _ls_payload(annotation.get("result"), kind, path)
    try:
        payload = normalise_payload(raw, kind=kind, classes=classes)
    except DataopsError as exc:
        raise _RowProblem(f"{path}.result", raw.get("class", raw.get("boxes")), str(exc)) from None
    return LabelRow(
        row=row,
        line=None,
        image_sha256=image.sha256,
        image_uri=image.uri,
        annotator=annotator,
        payload=payload,
        annotation_id=annotation_id,
        updated_at=updated_at,
        image_field=image.field,
        task_key=image.task_key,
    )


def parse_file(
    text: str, fmt: str, *, kind: str | None = None, classes: Sequence[str] | None = None
) -> ParsedFile:
    if fmt == "csv":
        return parse_csv(text, kind=kind, classes=classes)
    if fmt == "labelstudio":
        return parse_labelstudio(text, kind=kind, classes=classes)
    raise LabelFileError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
