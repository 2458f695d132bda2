"""Hugging Face ``datasets`` export: per-split Parquet files and a dataset card.

``data/<split>-00000-of-00001.parquet`` per split with rows, plus a ``README.md`` whose YAML
``configs`` names each split's file, so ``load_dataset(folder)`` yields the manifest's split
names as they are (``datasets`` also finds them by the file names; the card says it outright
and is what the Hub shows).
Columns: ``image`` in the storage form of ``datasets.Image`` (``{bytes, path}``, upright
pixels with no orientation tag, as the other exports write them), ``label`` as a typed struct
(``{class}`` for image classes, ``{boxes: [{class, x, y, w, h}]}`` for boxes, relative to the
upright image), and the manifest row's ``sha256``, ``split``, ``width``, ``height``, ``uri``,
``guideline_version`` and ``label_version_id``. The features, ``class`` as a ``ClassLabel``,
are declared in the Parquet schema metadata (the ``huggingface`` key ``datasets`` reads), so
images and class names decode without a workaround. Class ids are those of the
``TorchDataset`` of the same manifest: sorted names for image classes (ImageFolder's rule),
the guideline's order for boxes (the YOLO class id, the COCO category id minus one).
The images live inside the Parquet files, so the export has no ``index.jsonl`` of image files;
each row's ``sha256`` is the catalog image's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dataops.errors import DataopsError
from dataops.manifests.body import RowRecord
from dataops.manifests.detection import detection_classes, is_box_row, row_boxes
from dataops.manifests.export import ExportCounts, Locate, WrongKind, image_extension
from dataops.manifests.export_target import staged_export
from dataops.manifests.loader import CLASS_KEY, check_blob, class_names
from dataops.manifests.upright import upright

DATA_DIR = "data"
CARD = "README.md"
ROW_GROUP = 64
_COORDS = ("x", "y", "w", "h")
# datasets' split names: words joined by dots.
_SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")
_COLUMNS: dict[str, str] = {
    "sha256": "string",
    "split": "string",
    "width": "int64",
    "height": "int64",
    "uri": "string",
    "guideline_version": "string",
    "label_version_id": "int64",
}


def split_file(split: str) -> str:
    return f"{DATA_DIR}/{split}-00000-of-00001.parquet"


def _value(dtype: str) -> dict[str, Any]:
    return {"dtype": dtype, "_type": "Value"}


def features(names: Sequence[str], boxes: bool) -> dict[str, Any]:
    """The ``datasets`` features (``Features.to_dict`` form) of the exported columns."""
    class_label = {"names": list(names), "_type": "ClassLabel"}
    if boxes:
        box = {CLASS_KEY: class_label, **{key: _value("float64") for key in _COORDS}}
        label: dict[str, Any] = {"boxes": {"feature": box, "_type": "List"}}
    else:
        label = {CLASS_KEY: class_label}
    columns = {name: _value(dtype) for name, dtype in _COLUMNS.items()}
    return {"image": {"_type": "Image"}, "label": label, **columns}


def _schema(names: Sequence[str], boxes: bool) -> Any:
    import pyarrow as pa

    if boxes:
        box = pa.struct(
            [pa.field(CLASS_KEY, pa.int64()), *(pa.field(k, pa.float64()) for k in _COORDS)]
        )
        label = pa.struct([pa.field("boxes", pa.list_(box))])
    else:
        label = pa.struct([pa.field(CLASS_KEY, pa.int64())])
    image = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
    kinds = {"string": pa.string(), "int64": pa.int64()}
    fields = [pa.field("image", image), pa.field("label", label)]
    fields += [pa.field(name, kinds[dtype]) for name, dtype in _COLUMNS.items()]
    info = {"info": {"features": features(names, boxes)}}
    return pa.schema(fields, metadata={"huggingface": json.dumps(info)})


def _label(row: RowRecord, index: Mapping[str, int], boxes: bool) -> dict[str, Any]:
    if boxes:
        return {
            "boxes": [
                {CLASS_KEY: index[name], "x": x, "y": y, "w": w, "h": h}
                for name, x, y, w, h in row_boxes(row)
            ]
        }
    return {CLASS_KEY: index[row["label"][CLASS_KEY]]}


def card(name: str, splits: Sequence[str], names: Sequence[str], boxes: bool) -> str:
    """``README.md`` with the ``configs`` YAML that maps each split to its Parquet file."""
    import yaml

    header = {
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": split_file(s)} for s in splits],
            }
        ]
    }
    kind = "boxes (relative x, y, w, h)" if boxes else "image classes"
    return (
        f"---\n{yaml.safe_dump(header, sort_keys=False, allow_unicode=True)}---\n\n"
        f"# {name}\n\nExported by dataops from manifest `{name}`: {kind}; "
        f"classes: {', '.join(names)}.\n"
    )


class _Images:
    """Upright image bytes of rows, re-hashed against the catalog on the way."""

    def __init__(self, locate: Locate, verify: bool) -> None:
        self.locate, self.verify = locate, verify
        self.counts = ExportCounts()

    def read(self, row: RowRecord) -> bytes:
        source = self.locate(row)
        if not isinstance(source, bytes):
            path = Path(source)
            if not path.is_file():
                raise DataopsError(f"image {row['sha256']}: {path} is missing")
            source = path.read_bytes()
        if self.verify:
            check_blob(row, hashlib.sha256(source).hexdigest())
        self.counts.written += 1
        turned = upright(source)
        if turned is None:
            return source
        self.counts.upright += 1
        self.counts.lossy += turned.method != "jpegtran"
        return turned.data


def export_hf(
    rows: Iterable[RowRecord],
    destination: str | os.PathLike[str],
    locate: Locate,
    verify_sha256: bool = True,
    *,
    classes: Sequence[str] | None = None,
    name: str = "dataset",
    marker: Mapping[str, Any] | None = None,
) -> ExportCounts:
    """Per-split Parquet files and a dataset card that ``datasets.load_dataset`` reads."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    all_rows = list(rows)
    boxes = bool(all_rows) and is_box_row(all_rows[0])
    for row in all_rows:
        if is_box_row(row) != boxes:
            raise WrongKind(
                f"hf export needs one kind of label, but image {row['sha256']} has "
                f"{row['label']!r} beside rows with {'boxes' if boxes else 'image classes'}"
            )
    names = detection_classes(all_rows, classes) if boxes else class_names(all_rows, classes)
    index = {label: i for i, label in enumerate(names)}
    splits = sorted({row["split"] for row in all_rows})
    for split in splits:
        if not _SPLIT_NAME.match(split):
            raise DataopsError(f"split {split!r} cannot be a datasets split name (letters, _)")
    schema = _schema(names, boxes)
    images = _Images(locate, verify_sha256)
    with staged_export(destination, {"format": "hf", **(marker or {})}) as staged:
        (staged / DATA_DIR).mkdir()
        for split in splits:
            chosen = [row for row in all_rows if row["split"] == split]
            with pq.ParquetWriter(staged / split_file(split), schema) as writer:
                for start in range(0, len(chosen), ROW_GROUP):
                    batch = chosen[start : start + ROW_GROUP]
                    columns: dict[str, list[Any]] = {
                        "image": [
                            {"bytes": images.read(r), "path": r["sha256"] + image_extension(r)}
                            for r in batch
                        ],
                        "label": [_label(r, index, boxes) for r in batch],
                    }
                    for column in _COLUMNS:
                        columns[column] = [r[column] for r in batch]  # type: ignore[literal-required]
                    writer.write_table(pa.Table.from_pydict(columns, schema=schema))
        (staged / CARD).write_text(card(name, splits, names, boxes), encoding="utf-8")
    return images.counts
