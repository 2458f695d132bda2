"""Exports of manifest rows for tools that do not read manifests.

Image files are named ``<sha256><ext>`` so an export is content-addressed: re-running it
skips files already in place, and a crash never leaves a half-written file under its final
name. Files are hard-linked from the blob store when it is on the same local file system
(no copy, no extra space; the link shares bytes with the store, so treat exports as
read-only) and copied otherwise. Each image is re-hashed before it is placed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from dataops.errors import DataopsError
from dataops.manifests.body import ManifestRow, _atomic_write
from dataops.manifests.loader import CLASS_KEY, check_blob

BOXES_KEY = "boxes"
_BOX_SLACK = 1e-6

Locate = Callable[[ManifestRow], "str | os.PathLike[str] | bytes"]
"""Where an image's bytes are: a local path (hard-linked or copied) or the bytes themselves."""


@dataclass
class ExportCounts:
    """What an export did per image."""

    linked: int = 0
    copied: int = 0
    written: int = 0
    skipped: int = 0


def image_extension(row: ManifestRow) -> str:
    """Lower-case suffix of the original file (``.jpg``), else of the blob key, else none."""
    for name in (urlparse(row["uri"]).path, row["blob_key"]):
        suffix = PurePosixPath(name).suffix.lower()
        if suffix:
            return suffix
    return ""


def _safe_dir_name(name: str, what: str) -> str:
    if name in ("", ".", "..") or any(ch in name for ch in "/\\\0"):
        raise DataopsError(f"{what} {name!r} cannot be a folder name")
    return name


def _place(row: ManifestRow, dst: Path, locate: Locate, verify: bool, counts: ExportCounts) -> None:
    if dst.exists():
        counts.skipped += 1
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    source = locate(row)
    if isinstance(source, bytes):
        if verify:
            check_blob(row, hashlib.sha256(source).hexdigest())
        tmp = _atomic_write(dst.parent, dst.suffix, lambda p: p.write_bytes(source), fsync=False)
        os.replace(tmp, dst)
        counts.written += 1
        return
    path = Path(source)
    if not path.is_file():
        raise DataopsError(f"image {row['sha256']}: {path} is missing")
    if verify:
        with open(path, "rb") as handle:
            check_blob(row, hashlib.file_digest(handle, "sha256").hexdigest())
    try:
        os.link(path, dst)
        counts.linked += 1
    except OSError:
        tmp = _atomic_write(dst.parent, dst.suffix, lambda p: shutil.copyfile(path, p), fsync=False)
        os.replace(tmp, dst)
        counts.copied += 1


def export_folder(
    rows: Iterable[ManifestRow],
    destination: str | os.PathLike[str],
    locate: Locate,
    verify_sha256: bool = True,
) -> ExportCounts:
    """``split/class/<sha256><ext>`` for image-classification tools (ImageFolder layout)."""
    root = Path(destination)
    counts = ExportCounts()
    for row in rows:
        label = row["label"]
        if not isinstance(label.get(CLASS_KEY), str):
            raise DataopsError(f"image {row['sha256']}: label {label!r} has no class")
        folder = (
            root / _safe_dir_name(row["split"], "split") / _safe_dir_name(label[CLASS_KEY], "class")
        )
        _place(
            row, folder / f"{row['sha256']}{image_extension(row)}", locate, verify_sha256, counts
        )
    return counts


def _boxes(row: ManifestRow) -> list[dict[str, Any]]:
    boxes = row["label"].get(BOXES_KEY, [])
    if not isinstance(boxes, list):
        raise DataopsError(f"image {row['sha256']}: {BOXES_KEY!r} must be a list")
    for box in boxes:
        if not isinstance(box, dict) or not isinstance(box.get(CLASS_KEY), str):
            raise DataopsError(f"image {row['sha256']}: box {box!r} has no class")
        coords = []
        for key in ("x", "y", "w", "h"):
            value = box.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise DataopsError(f"image {row['sha256']}: box {box!r} needs a number {key}")
            coords.append(float(value))
        x, y, w, h = coords
        if min(x, y, w, h) < 0 or x + w > 1 + _BOX_SLACK or y + h > 1 + _BOX_SLACK:
            raise DataopsError(
                f"image {row['sha256']}: box {box!r} is not relative x, y, w, h inside [0, 1]"
            )
    return boxes


def coco_dataset(
    rows: Sequence[ManifestRow],
    split: str | None = None,
    file_name: Callable[[ManifestRow], str] | None = None,
) -> dict[str, Any]:
    """COCO detection dict for the rows of ``split`` (all rows when None).

    Category, image and annotation ids come from all given rows (categories sorted by name,
    images by sha256), so the files of different splits agree on them. Boxes become absolute pixel
    ``[x, y, width, height]`` from the row's width and height.
    """
    ordered = sorted(rows, key=lambda row: row["sha256"])
    boxes_of = [_boxes(row) for row in ordered]
    names = sorted({box[CLASS_KEY] for boxes in boxes_of for box in boxes})
    category_ids = {name: i for i, name in enumerate(names, start=1)}
    name_of = file_name or (lambda row: f"{row['sha256']}{image_extension(row)}")
    images, annotations = [], []
    annotation_id = 0
    for image_id, (row, boxes) in enumerate(zip(ordered, boxes_of, strict=True), start=1):
        selected = split is None or row["split"] == split
        width, height = row["width"], row["height"]
        if selected:
            images.append(
                {
                    "id": image_id,
                    "file_name": name_of(row),
                    "width": width,
                    "height": height,
                    "sha256": row["sha256"],
                }
            )
        for box in boxes:
            annotation_id += 1
            if not selected:
                continue
            bbox = [box["x"] * width, box["y"] * height, box["w"] * width, box["h"] * height]
            annotations.append(
                {
                    "id": annotation_id,
                    "image_id": image_id,
                    "category_id": category_ids[box[CLASS_KEY]],
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": name} for name, i in category_ids.items()],
    }


def _write_json(path: Path, document: Any) -> None:
    data = json.dumps(document, ensure_ascii=False, allow_nan=False).encode()
    os.replace(_atomic_write(path.parent, ".json", lambda tmp: tmp.write_bytes(data)), path)


def export_coco(
    rows: Iterable[ManifestRow],
    destination: str | os.PathLike[str],
    locate: Locate,
    verify_sha256: bool = True,
) -> ExportCounts:
    """``images/<split>/<sha256><ext>`` plus ``annotations/<split>.json`` per split."""
    root = Path(destination)
    all_rows = list(rows)
    counts = ExportCounts()
    for row in all_rows:
        split_dir = _safe_dir_name(row["split"], "split")
        dst = root / "images" / split_dir / f"{row['sha256']}{image_extension(row)}"
        _place(row, dst, locate, verify_sha256, counts)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split in sorted({row["split"] for row in all_rows}):
        coco = coco_dataset(
            all_rows, split, lambda row: f"{row['split']}/{row['sha256']}{image_extension(row)}"
        )
        _write_json(root / "annotations" / f"{split}.json", coco)
    return counts
