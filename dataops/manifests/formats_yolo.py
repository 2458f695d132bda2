"""YOLO exports in the layouts ultralytics reads: ``yolo`` (boxes) and ``yolo-cls`` (classes).

``yolo``: ``images/<split>/<sha256><ext>`` (upright), one ``labels/<split>/<sha256>.txt`` per
image (empty when it has no box) with a ``class cx cy w h`` line per box, centre and size
relative to the upright image, and ``data.yaml`` naming the split folders and the classes.
Class ``i`` is the guideline's class list in order (other drawn classes after it, sorted), the
COCO category id ``i + 1`` and the detection ``TorchDataset`` label ``i + 1``. ``data.yaml``
has no ``path``, so ultralytics resolves the split folders next to the file; its training
needs ``train`` and ``val`` splits (the default split spec has them).

``yolo-cls``: the folder layout (``<split>/<class>/...``, every class in every split, plus
``classes.txt``), which ultralytics' classification datasets read with torchvision's
``ImageFolder(allow_empty=True)``: class folders sorted by name, empty ones kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from dataops.manifests.body import RowRecord
from dataops.manifests.errors import escaped
from dataops.manifests.export import (
    BOXES_KEY,
    ExportCounts,
    Locate,
    Placer,
    WrongKind,
    class_list,
    export_folder,
    image_extension,
    label_boxes,
    safe_dir_name,
)
from dataops.manifests.export_target import staged_export, write_index
from dataops.manifests.loader import CLASS_KEY

DATA_YAML = "data.yaml"
LABELS_DIR = "labels"
DATA_FOLDERS = (f"{LABELS_DIR}/",)


def _refuse_kind(rows: Iterable[RowRecord], boxes: bool) -> None:
    for row in rows:
        if (BOXES_KEY in row["label"]) != boxes:
            if boxes:
                raise WrongKind(
                    f"yolo export needs box labels, but image {row['sha256']} has "
                    f"{escaped(repr(row['label']))} (image classes): use {{format}} yolo-cls",
                    fields=("format",),
                )
            raise WrongKind(
                f"yolo-cls export needs image classes, but image {row['sha256']} has boxes: "
                "use {format} yolo",
                fields=("format",),
            )


def label_lines(row: RowRecord, index: Mapping[str, int]) -> str:
    """``class cx cy w h`` per box, relative, in fixed notation (readers split on spaces)."""
    lines = []
    for box in label_boxes(row):
        x, y, w, h = (float(box[k]) for k in ("x", "y", "w", "h"))
        values = (x + w / 2, y + h / 2, w, h)
        lines.append(f"{index[box[CLASS_KEY]]} " + " ".join(f"{v:.6f}" for v in values) + "\n")
    return "".join(lines)


def data_yaml(splits: Sequence[str], names: Sequence[str]) -> str:
    document: dict[str, Any] = {split: f"images/{split}" for split in splits}
    document["nc"] = len(names)
    document["names"] = dict(enumerate(names))
    text: str = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return text


def export_yolo(
    rows: Iterable[RowRecord],
    destination: str | os.PathLike[str],
    locate: Locate,
    verify_sha256: bool = True,
    *,
    classes: Sequence[str] | None = None,
    marker: Mapping[str, Any] | None = None,
) -> ExportCounts:
    """The ultralytics detection layout of box rows; image-class rows are refused."""
    all_rows = list(rows)
    _refuse_kind(all_rows, boxes=True)
    names = class_list(classes, {b[CLASS_KEY] for row in all_rows for b in label_boxes(row)})
    index = {name: i for i, name in enumerate(names)}
    splits = sorted({row["split"] for row in all_rows})
    for split in splits:
        safe_dir_name(split, "split")
    with staged_export(destination, {"format": "yolo", **(marker or {})}) as staged:
        placer = Placer(staged, Path(destination).absolute(), locate, verify_sha256)
        for split in splits:
            (staged / LABELS_DIR / split).mkdir(parents=True)
        for row in all_rows:
            stem = f"{row['split']}/{row['sha256']}"
            placer.place(row, f"images/{stem}{image_extension(row)}")
            (staged / LABELS_DIR / f"{stem}.txt").write_text(label_lines(row, index))
        (staged / DATA_YAML).write_text(data_yaml(splits, names), encoding="utf-8")
        write_index(staged, placer.entries)
    return placer.counts


def export_yolo_cls(
    rows: Iterable[RowRecord],
    destination: str | os.PathLike[str],
    locate: Locate,
    verify_sha256: bool = True,
    *,
    classes: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    marker: Mapping[str, Any] | None = None,
) -> ExportCounts:
    """The ultralytics classification layout of image-class rows; box rows are refused."""
    all_rows = list(rows)
    _refuse_kind(all_rows, boxes=False)
    return export_folder(
        all_rows,
        destination,
        locate,
        verify_sha256,
        classes=classes,
        splits=splits,
        marker={**(marker or {}), "format": "yolo-cls"},
    )
