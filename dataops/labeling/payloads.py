"""The one normal form every label payload is stored in: a class, or a list of boxes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from dataops.labeling.errors import InvalidLabel

MAX_CLASS_CHARS = 128
# Label Studio rounds percentages, so a box may overhang the image by a hair.
_OVERHANG = 1e-6


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored as text (PostgreSQL refuses NUL and lone surrogates)."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return "contains control characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text"
    return None


def _class_name(value: object, where: str) -> str:
    if isinstance(value, str) and not value.strip():
        raise InvalidLabel(f"{where} is empty: give a class name")
    if not isinstance(value, str):
        raise InvalidLabel(f"{where} must be a class name (text), got {value!r}")
    name = value.strip()
    problem = text_problem(name)
    if problem:
        raise InvalidLabel(f"{where} {problem}")
    if len(name) > MAX_CLASS_CHARS:
        raise InvalidLabel(f"{where} is longer than {MAX_CLASS_CHARS} characters")
    return name


def _coordinate(box: dict[str, Any], key: str, index: int) -> float:
    value = box.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidLabel(f"boxes[{index}].{key} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidLabel(f"boxes[{index}].{key} must be finite, got {value!r}")
    return number


def _box(raw: object, index: int) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidLabel(f"boxes[{index}] must be an object with class, x, y, w, h")
    name = _class_name(raw.get("class"), f"boxes[{index}].class")
    x, y, w, h = (_coordinate(raw, key, index) for key in ("x", "y", "w", "h"))
    if w <= 0 or h <= 0:
        raise InvalidLabel(f"boxes[{index}] has no area (w={w}, h={h})")
    if x < -_OVERHANG or y < -_OVERHANG or x + w > 1 + _OVERHANG or y + h > 1 + _OVERHANG:
        raise InvalidLabel(
            f"boxes[{index}] lies outside the image: coordinates are relative (0..1) x, y, w, h"
        )
    x, y = max(x, 0.0), max(y, 0.0)
    return {"class": name, "x": x, "y": y, "w": min(w, 1.0 - x), "h": min(h, 1.0 - y)}


def _canonical(name: str, classes: Sequence[str] | None, where: str) -> str:
    """Match a class to the guideline's spelling; case and surrounding spaces do not count."""
    if classes is None:
        return name
    by_fold = {c.casefold(): c for c in classes}
    if name.casefold() not in by_fold:
        shown = ", ".join(classes[:25]) + (" ..." if len(classes) > 25 else "")
        raise InvalidLabel(f"{where} {name!r} is not a class of the guideline ({shown})")
    return by_fold[name.casefold()]


def normalise_payload(
    payload: object,
    *,
    kind: str | None = None,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Return ``{"class": name}`` or ``{"boxes": [{"class","x","y","w","h"}]}``.

    With a guideline's ``kind`` and ``classes`` the payload must match them; class names are
    rewritten to the guideline's spelling so that "t-shirt" and "T-Shirt" count as one class.
    """
    if not isinstance(payload, dict):
        raise InvalidLabel(f"a label payload must be an object, got {type(payload).__name__}")
    keys = set(payload)
    if keys == {"class"}:
        found = "classification"
    elif keys == {"boxes"}:
        found = "detection"
    else:
        raise InvalidLabel(
            'a label payload is {"class": NAME} (classification) or '
            '{"boxes": [{"class", "x", "y", "w", "h"}]} (detection), '
            f"got keys {sorted(map(str, keys))}"
        )
    if kind is not None and found != kind:
        raise InvalidLabel(f"the guideline asks for {kind} labels, this is a {found} label")
    if found == "classification":
        return {"class": _canonical(_class_name(payload["class"], "class"), classes, "class")}
    raw_boxes = payload["boxes"]
    if not isinstance(raw_boxes, list):
        raise InvalidLabel("boxes must be a list (empty when the image shows no object)")
    boxes = [_box(raw, index) for index, raw in enumerate(raw_boxes)]
    for index, box in enumerate(boxes):
        box["class"] = _canonical(box["class"], classes, f"boxes[{index}].class")
    return {"boxes": boxes}
