"""Pascal VOC detection export: the layout datumaro, FiftyOne and torchvision's VOC readers expect.

``JPEGImages/<sha256><ext>`` (the upright image, whatever its format), one
``Annotations/<sha256>.xml`` per image with its upright size and one ``<object>`` per box,
``ImageSets/Main/<split>.txt`` listing the item ids of each split, and ``labelmap.txt`` with the
guideline's classes (datumaro reads the class list from it; without it a reader assumes the 20
PASCAL classes). Box corners are absolute pixels, ``xmin ymin xmax ymax`` measured from the
top-left corner (0-based, not rounded to whole pixels, as the manifest's boxes are relative).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dataops.errors import DataopsError
from dataops.manifests.body import RowRecord
from dataops.manifests.export import (
    ExportCounts,
    Locate,
    Placer,
    class_list,
    image_extension,
    label_boxes,
    require_boxes,
    safe_dir_name,
)
from dataops.manifests.export_target import staged_export, write_index
from dataops.manifests.loader import CLASS_KEY

IMAGES_DIR = "JPEGImages"
ANNOTATIONS_DIR = "Annotations"
SETS_DIR = "ImageSets/Main"
LABELMAP = "labelmap.txt"
DATA_FOLDERS = (f"{ANNOTATIONS_DIR}/", "ImageSets/")


def pixel(value: float) -> str:
    """A pixel coordinate as short text: whole numbers without a decimal point."""
    rounded = round(value, 3)
    return str(int(rounded)) if rounded == int(rounded) else repr(rounded)


def _text(parent: ET.Element, tag: str, text: object) -> ET.Element:
    child = ET.SubElement(parent, tag)
    child.text = str(text)
    return child


def annotation_xml(row: RowRecord, file_name: str) -> bytes:
    """The VOC ``<annotation>`` document of one row."""
    width, height = row["width"], row["height"]
    root = ET.Element("annotation")
    _text(root, "folder", IMAGES_DIR)
    _text(root, "filename", file_name)
    source = ET.SubElement(root, "source")
    _text(source, "database", "dataops")
    size = ET.SubElement(root, "size")
    _text(size, "width", width)
    _text(size, "height", height)
    _text(size, "depth", 3)
    _text(root, "segmented", 0)
    for box in label_boxes(row):
        obj = ET.SubElement(root, "object")
        _text(obj, "name", box[CLASS_KEY])
        _text(obj, "pose", "Unspecified")
        _text(obj, "truncated", 0)
        _text(obj, "difficult", 0)
        bndbox = ET.SubElement(obj, "bndbox")
        x, y = box["x"] * width, box["y"] * height
        _text(bndbox, "xmin", pixel(x))
        _text(bndbox, "ymin", pixel(y))
        _text(bndbox, "xmax", pixel(x + box["w"] * width))
        _text(bndbox, "ymax", pixel(y + box["h"] * height))
    ET.indent(root)
    xml: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return xml + b"\n"


def export_voc(
    rows: Iterable[RowRecord],
    destination: str | os.PathLike[str],
    locate: Locate,
    verify_sha256: bool = True,
    *,
    classes: Sequence[str] | None = None,
    marker: Mapping[str, Any] | None = None,
) -> ExportCounts:
    """Write box rows as a Pascal VOC detection folder (see the module docstring)."""
    all_rows = sorted(rows, key=lambda row: row["sha256"])
    require_boxes(all_rows, "VOC")
    for row in all_rows:
        safe_dir_name(row["split"], "split")
    names = class_list(classes, {box[CLASS_KEY] for row in all_rows for box in label_boxes(row)})
    for name in names:
        if ":" in name or "\n" in name:
            raise DataopsError(
                f"class {name!r} cannot be written to VOC's {LABELMAP}: rename it without ':'"
            )
    with staged_export(destination, {"format": "voc", **(marker or {})}) as staged:
        placer = Placer(staged, Path(destination).absolute(), locate, verify_sha256)
        (staged / ANNOTATIONS_DIR).mkdir()
        (staged / SETS_DIR).mkdir(parents=True)
        splits: dict[str, list[str]] = {}
        for row in all_rows:
            file_name = f"{row['sha256']}{image_extension(row)}"
            placer.place(row, f"{IMAGES_DIR}/{file_name}")
            (staged / ANNOTATIONS_DIR / f"{row['sha256']}.xml").write_bytes(
                annotation_xml(row, file_name)
            )
            splits.setdefault(row["split"], []).append(row["sha256"])
        for split, ids in sorted(splits.items()):
            (staged / SETS_DIR / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        lines = ["# label:color_rgb:parts:actions\n", *(f"{name}:::\n" for name in names)]
        (staged / LABELMAP).write_text("".join(lines), encoding="utf-8")
        write_index(staged, placer.entries)
    return placer.counts
