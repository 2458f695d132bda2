"""Label Studio JSON exports into checked rows, without touching the DB.

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

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dataops.errors import DataopsError
from dataops.labeling.errors import LabelFileError
from dataops.labeling.importers import (
    EMAIL,
    MAX_NAME_CHARS,
    MAX_USER_ID,
    SHA256,
    AnnotatorRef,
    LabelRow,
    ParsedFile,
    parse_timestamp,
    shown,
)
from dataops.labeling.payloads import normalise_payload, text_problem
from dataops.labeling.schemas import RowError

# Task data field holding the task key dataops pushed (an opaque token, mapped in task_keys).
TASK_KEY_FIELD = "dataops_item"
MAX_TASK_KEY_CHARS = 64
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


def _user_id(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("a user id is a number")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not 0 < value <= MAX_USER_ID:
        raise ValueError(f"a Label Studio user id is a positive number, got {shown(value)}")
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
        not isinstance(email, str) or not EMAIL.match(email.strip()) or text_problem(email)
    ):
        raise ValueError(f"completed_by.email is not an email address: {shown(email)}")
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
        f"result type {shown(kind)} is not imported (dataops imports choices, "
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
            f"an annotation id is a non-negative number, got {shown(value)} "
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
        if not isinstance(sha, str) or not SHA256.match(sha.strip()):
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
        parsed.errors.append(RowError(row=row, field=path, value=shown(value), message=message))

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
