"""Labels made in CVAT, from a "CVAT for images 1.1" XML export, into checked rows.

The XML says nothing about who labeled, so the annotator is given by the importer. Images are
found by their ``name``: a ``<sha256><ext>`` name (what ``manifest export --format cvat``
writes) is the catalog image itself; any other name is matched by file name against the
locations the images were ingested from, and must match exactly one image. Box corners are
read in the pixels of the ``<image>``'s width and height, which must be the catalog's upright
size. ``<box>`` elements become boxes and one ``<tag>`` a class; an image with neither was not
labeled and is skipped (CVAT lists every image of a task). Every other shape (polygons,
points, masks, rotated boxes, ...) is an error of its row, so nothing is stored half.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from dataops.errors import DataopsError
from dataops.labeling.errors import LabelFileError
from dataops.labeling.importers import AnnotatorRef, LabelRow, ParsedFile, shown
from dataops.labeling.payloads import normalise_payload
from dataops.labeling.schemas import RowError

FORMAT = "cvat"
_SHA_NAME = re.compile(r"^[0-9a-f]{64}$")
_SHAPES = ("polygon", "polyline", "points", "mask", "ellipse", "cuboid", "skeleton")


@dataclass
class ParsedCvat(ParsedFile):
    # (width, height) the XML gives each row's image, by row number.
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)


class _Problem(Exception):
    def __init__(self, path: str, value: object, message: str) -> None:
        super().__init__(message)
        self.path, self.value, self.message = path, value, message


def _number(element: ET.Element, key: str, path: str) -> float:
    raw = element.get(key)
    try:
        value = float(raw or "")
    except ValueError:
        raise _Problem(f"{path}@{key}", raw, "must be a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise _Problem(f"{path}@{key}", raw, "must be a finite number")
    return value


def _size(image: ET.Element) -> tuple[int, int]:
    out = []
    for key in ("width", "height"):
        raw = image.get(key)
        if raw is None or not raw.isdigit() or int(raw) <= 0:
            raise _Problem(key, raw, "the image needs a positive whole width and height")
        out.append(int(raw))
    return out[0], out[1]


def _box(element: ET.Element, path: str, width: int, height: int) -> dict[str, Any]:
    rotation = element.get("rotation")
    if rotation is not None and _number(element, "rotation", path) % 360 != 0:
        raise _Problem(f"{path}@rotation", rotation, "a rotated box is not imported: unrotate it")
    xtl, ytl, xbr, ybr = (_number(element, k, path) for k in ("xtl", "ytl", "xbr", "ybr"))
    if xbr < xtl or ybr < ytl:
        raise _Problem(
            path, f"{xtl},{ytl},{xbr},{ybr}", "xbr/ybr must not be left of/above xtl/ytl"
        )
    # CVAT lets a box reach a little past the border; clamp to the image.
    x0, x1 = (min(max(v / width, 0.0), 1.0) for v in (xtl, xbr))
    y0, y1 = (min(max(v / height, 0.0), 1.0) for v in (ytl, ybr))
    return {"class": element.get("label"), "x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0}


def _payload(image: ET.Element, path: str) -> dict[str, Any] | None:
    width, height = _size(image)
    tags = [t.get("label") for t in image.findall("tag")]
    boxes = []
    for number, child in enumerate(image):
        where = f"{path}/{child.tag}[{number}]"
        if child.tag in _SHAPES:
            raise _Problem(
                where,
                child.get("label"),
                f"a {child.tag} is not imported: dataops stores "
                "classes and boxes; draw rectangles or convert these shapes, then export again",
            )
        if child.tag == "box":
            boxes.append(_box(child, where, width, height))
    if tags and boxes:
        raise _Problem(path, ",".join(map(str, tags)), "an image has tags and boxes: keep one")
    if len(tags) > 1:
        raise _Problem(path, ",".join(map(str, tags)), "an image has one class tag, not several")
    if tags:
        return {"class": tags[0]}
    return {"boxes": boxes} if boxes else None


def image_key(name: str) -> tuple[str | None, str]:
    """(sha256, None-like name) for a name dataops exported, else (None, the name)."""
    stem = PurePosixPath(name).stem
    return (stem, name) if _SHA_NAME.match(stem) else (None, name)


def parse_cvat(
    text: str,
    *,
    annotator: AnnotatorRef,
    kind: str | None = None,
    classes: Sequence[str] | None = None,
) -> ParsedCvat:
    """Rows of a CVAT for images 1.1 document; bad images become row errors."""
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        # CVAT never writes them; refusing them keeps entity expansion out of the parser.
        raise LabelFileError("the XML declares a DOCTYPE or entities; a CVAT export has none")
    try:
        root = ET.fromstring(text)  # noqa: S314 (no DOCTYPE, so no entities to expand)
    except ET.ParseError as exc:
        raise LabelFileError(f"not an XML document: {exc}") from None
    if root.tag != "annotations" or (root.find("image") is None and root.find("track") is None):
        raise LabelFileError(
            "a CVAT export is an <annotations> document with <image> elements: export the task "
            'as "CVAT for images 1.1" and import its annotations.xml'
        )
    if root.find("track") is not None:
        raise LabelFileError('this is "CVAT for video" (tracks): export as "CVAT for images 1.1"')
    parsed = ParsedCvat()
    for row, image in enumerate(root.iter("image"), start=1):
        name = (image.get("name") or "").strip()
        parsed.annotations += 1
        path = f"image[@id={image.get('id')}]"
        try:
            if not name:
                raise _Problem("name", image.get("name"), "the image has no name")
            raw = _payload(image, path)
            if raw is None:
                parsed.skipped += 1
                continue
            try:
                payload = normalise_payload(raw, kind=kind, classes=classes)
            except DataopsError as exc:
                raise _Problem(path, raw.get("class", raw.get("boxes")), str(exc)) from None
        except _Problem as problem:
            parsed.errors.append(
                RowError(
                    row=row,
                    field=problem.path,
                    value=shown(problem.value),
                    message=problem.message,
                )
            )
            continue
        sha, uri = image_key(name)
        parsed.sizes[row] = _size(image)
        parsed.rows.append(
            LabelRow(
                row=row,
                line=None,
                image_sha256=sha,
                image_uri=None if sha else uri,
                annotator=annotator,
                payload=payload,
                image_field="name",
            )
        )
    return parsed
