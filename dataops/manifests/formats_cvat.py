"""CVAT for images 1.1 XML export, for pre-annotation in CVAT (and datumaro, FiftyOne).

One ``<split>.xml`` per split beside ``images/<split>/<sha256><ext>`` (the upright images):
create a CVAT task from a split's images, then upload its XML as "CVAT for images 1.1"; CVAT
matches ``<image name>`` to the task's file names. ``<meta>`` lists the guideline's classes as
the task's labels, so classes nobody used yet are there to draw. Box rows become ``<box>``
elements in the image's upright pixels; classification rows become one ``<tag>`` each.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dataops.manifests.body import RowRecord
from dataops.manifests.export import (
    BOXES_KEY,
    ExportCounts,
    Locate,
    Placer,
    WrongKind,
    class_list,
    image_extension,
    label_boxes,
    safe_dir_name,
)
from dataops.manifests.export_target import staged_export, write_index
from dataops.manifests.formats_voc import pixel
from dataops.manifests.loader import CLASS_KEY

VERSION = "1.1"
IMAGES_DIR = "images"


def row_labels(row: RowRecord) -> tuple[str, list[dict[str, Any]]]:
    """``("box", boxes)`` or ``("tag", [{"class": ...}])`` for a row, or refuse its label."""
    label = row["label"]
    if BOXES_KEY in label:
        return "box", label_boxes(row)
    if isinstance(label.get(CLASS_KEY), str):
        return "tag", [{CLASS_KEY: label[CLASS_KEY]}]
    raise WrongKind(
        f"image {row['sha256']}: label {label!r} has neither boxes nor a class; "
        "CVAT export holds boxes or image classes"
    )


def _meta(root: ET.Element, name: str, split: str, size: int, labels: Sequence[str]) -> None:
    task = ET.SubElement(ET.SubElement(root, "meta"), "task")
    for tag, text in (("name", f"{name} {split}"), ("size", size), ("mode", "annotation")):
        ET.SubElement(task, tag).text = str(text)
    ET.SubElement(task, "overlap").text = "0"
    element = ET.SubElement(task, "labels")
    for label in labels:
        item = ET.SubElement(element, "label")
        ET.SubElement(item, "name").text = label
        ET.SubElement(item, "attributes")


def split_xml(
    rows: Sequence[RowRecord], split: str, labels: Sequence[str], name: str = "dataops"
) -> bytes:
    """The CVAT for images 1.1 document of one split's rows (ordered by file name)."""
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = VERSION
    _meta(root, name, split, len(rows), labels)
    for frame, row in enumerate(rows):
        width, height = row["width"], row["height"]
        image = ET.SubElement(
            root,
            "image",
            id=str(frame),
            name=f"{row['sha256']}{image_extension(row)}",
            subset=split,
            width=str(width),
            height=str(height),
        )
        kind, items = row_labels(row)
        for item in items:
            if kind == "tag":
                ET.SubElement(image, "tag", label=item[CLASS_KEY], source="manual")
                continue
            x, y = item["x"] * width, item["y"] * height
            ET.SubElement(
                image,
                "box",
                label=item[CLASS_KEY],
                source="manual",
                occluded="0",
                xtl=pixel(x),
                ytl=pixel(y),
                xbr=pixel(x + item["w"] * width),
                ybr=pixel(y + item["h"] * height),
                z_order="0",
            )
    ET.indent(root)
    xml: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return xml + b"\n"


def export_cvat(
    rows: Iterable[RowRecord],
    destination: str | os.PathLike[str],
    locate: Locate,
    verify_sha256: bool = True,
    *,
    classes: Sequence[str] | None = None,
    name: str = "dataops",
    marker: Mapping[str, Any] | None = None,
) -> ExportCounts:
    """Write rows as CVAT for images 1.1 (see the module docstring)."""
    all_rows = sorted(rows, key=lambda row: row["sha256"])
    present = {item[CLASS_KEY] for row in all_rows for item in row_labels(row)[1]}
    labels = class_list(classes, present)
    for row in all_rows:
        safe_dir_name(row["split"], "split")
    with staged_export(destination, {"format": "cvat", **(marker or {})}) as staged:
        placer = Placer(staged, Path(destination).absolute(), locate, verify_sha256)
        for row in all_rows:
            placer.place(row, f"{IMAGES_DIR}/{row['split']}/{row['sha256']}{image_extension(row)}")
        for split in sorted({row["split"] for row in all_rows}):
            in_split = [row for row in all_rows if row["split"] == split]
            (staged / f"{split}.xml").write_bytes(split_xml(in_split, split, labels, name))
        write_index(staged, placer.entries)
    return placer.counts
