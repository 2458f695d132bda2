"""Label Studio annotations in the shapes dataops uses: one annotation version normalised for
the label store, and a prediction result to pre-fill or post an answer."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict

from dataops.labelstudio.config import IMAGE_NAME, LABEL_NAME, TaskKind
from dataops.labelstudio.transport import parse_timestamp


class NormalisedAnnotation(TypedDict):
    """One Label Studio annotation version, in the shape the label store records."""

    annotation_id: int
    task_id: int | None
    ls_user_id: int | None
    completed_by: int | None
    updated_at: datetime
    cancelled: bool
    payload: dict[str, Any]
    lead_time: float | None


def _lead_time(value: Any) -> float | None:
    """Seconds spent on the annotation; None when Label Studio sent none or nonsense."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _clamp(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def _result_items(annotation: Mapping[str, Any], result_type: str) -> list[Mapping[str, Any]]:
    return [
        item
        for item in annotation.get("result") or []
        if item.get("from_name") == LABEL_NAME and item.get("type") == result_type
    ]


def normalise_annotation(annotation: Mapping[str, Any], kind: TaskKind) -> NormalisedAnnotation:
    """Convert a Label Studio annotation into our label payload plus its identity.

    Classification gives ``{"class": name}`` (``None`` when skipped or left empty); detection
    gives ``{"boxes": [{"class", "x", "y", "w", "h"}]}`` in relative 0..1 coordinates, clamped
    to the image (Label Studio stores percentages and lets boxes overhang by rounding).
    """
    payload: dict[str, Any]
    if kind == "classification":
        choices = [
            choice
            for item in _result_items(annotation, "choices")
            for choice in item["value"].get("choices", [])
        ]
        if len(choices) > 1:
            raise ValueError(
                f"annotation {annotation.get('id')} has {len(choices)} choices; expected one"
            )
        payload = {"class": choices[0] if choices else None}
    elif kind == "detection":
        boxes = []
        for item in _result_items(annotation, "rectanglelabels"):
            value = item["value"]
            if value.get("rotation"):
                raise ValueError(f"annotation {annotation.get('id')} has a rotated box")
            labels = value.get("rectanglelabels") or []
            if len(labels) != 1:
                raise ValueError(
                    f"annotation {annotation.get('id')} has a box with {len(labels)} labels"
                )
            x = _clamp(float(value["x"]) / 100.0)
            y = _clamp(float(value["y"]) / 100.0)
            right = _clamp((float(value["x"]) + float(value["width"])) / 100.0)
            bottom = _clamp((float(value["y"]) + float(value["height"])) / 100.0)
            boxes.append({"class": labels[0], "x": x, "y": y, "w": right - x, "h": bottom - y})
        payload = {"boxes": boxes}
    else:
        raise ValueError(f"unknown task kind: {kind!r}")

    completed_by = annotation.get("completed_by")
    if isinstance(completed_by, Mapping):
        completed_by = completed_by.get("id")
    author = annotation.get("updated_by")
    if author is None:
        author = completed_by
    task = annotation.get("task")
    return NormalisedAnnotation(
        annotation_id=int(annotation["id"]),
        task_id=int(task) if task is not None else None,
        ls_user_id=int(author) if author is not None else None,
        completed_by=int(completed_by) if completed_by is not None else None,
        updated_at=parse_timestamp(annotation["updated_at"]),
        cancelled=bool(annotation.get("was_cancelled")),
        payload=payload,
        lead_time=_lead_time(annotation.get("lead_time")),
    )


def prediction_result(
    kind: TaskKind,
    *,
    label: str | None = None,
    score: float | None = None,
    boxes: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Build the ``result`` list of a pre-annotation (also valid as an annotation result).

    Classification takes ``label`` and an optional ``score``; detection takes ``boxes`` as
    ``{"class", "x", "y", "w", "h", "score"?}`` in relative 0..1 coordinates.
    """
    base = {"from_name": LABEL_NAME, "to_name": IMAGE_NAME}
    if kind == "classification":
        if label is None:
            raise ValueError("a classification prediction needs a label")
        item: dict[str, Any] = {**base, "type": "choices", "value": {"choices": [label]}}
        if score is not None:
            item["score"] = float(score)
        return [item]
    if kind == "detection":
        results = []
        for box in boxes:
            coords = [float(box[key]) for key in ("x", "y", "w", "h")]
            x, y, w, h = coords
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 and w >= 0.0 and h >= 0.0):
                raise ValueError(f"box outside the image: {dict(box)}")
            if x + w > 1.0 + 1e-9 or y + h > 1.0 + 1e-9:
                raise ValueError(f"box outside the image: {dict(box)}")
            region: dict[str, Any] = {
                **base,
                "type": "rectanglelabels",
                "value": {
                    "x": x * 100.0,
                    "y": y * 100.0,
                    "width": w * 100.0,
                    "height": h * 100.0,
                    "rotation": 0,
                    "rectanglelabels": [str(box["class"])],
                },
            }
            if box.get("score") is not None:
                region["score"] = float(box["score"])
            results.append(region)
        return results
    raise ValueError(f"unknown task kind: {kind!r}")
