"""Label Studio labeling-config XML for the task kinds dataops labels.

The tag names here (``image``, ``label``) are the contract with ``normalise_annotation`` and
``prediction_result``: results carry ``from_name="label"`` and ``to_name="image"``.
"""

from __future__ import annotations

from typing import Literal
from xml.etree import ElementTree as ET

TaskKind = Literal["classification", "detection"]

IMAGE_NAME = "image"
LABEL_NAME = "label"
IMAGE_FIELD = "image"


def label_config(kind: TaskKind, classes: list[str]) -> str:
    """Build the project XML so every queue of a kind gets the same, parseable result shape."""
    if not classes:
        raise ValueError("a labeling config needs at least one class")
    if len(set(classes)) != len(classes):
        raise ValueError(f"class names must be unique: {classes}")
    if any(not name.strip() for name in classes):
        raise ValueError("class names must not be blank")
    if any(name.startswith("$") for name in classes):
        # Label Studio reads "$name" as a reference to a task data field.
        raise ValueError(f"class names must not start with '$': {classes}")

    view = ET.Element("View")
    ET.SubElement(view, "Image", name=IMAGE_NAME, value=f"${IMAGE_FIELD}")
    if kind == "classification":
        control = ET.SubElement(
            view, "Choices", name=LABEL_NAME, toName=IMAGE_NAME, choice="single", required="true"
        )
        child_tag = "Choice"
    elif kind == "detection":
        # Our boxes are axis-aligned xywh; a rotated rectangle could not be stored faithfully.
        control = ET.SubElement(
            view, "RectangleLabels", name=LABEL_NAME, toName=IMAGE_NAME, canRotate="false"
        )
        child_tag = "Label"
    else:
        raise ValueError(f"unknown task kind: {kind!r}")
    for name in classes:
        ET.SubElement(control, child_tag, value=name)
    ET.indent(view)
    return ET.tostring(view, encoding="unicode")
