"""Exports of manifest rows for tools that do not read manifests.

Image files are named ``<sha256><ext>`` after the catalog image. Files are hard-linked from
the blob store when it is on the same local file system (no copy, no extra space; the link
shares bytes with the store, so treat exports as read-only) and copied otherwise; each image
is re-hashed before it is placed. Images whose EXIF orientation turns them are written with
upright pixels and no orientation tag (:mod:`dataops.manifests.upright`), so loaders that
ignore EXIF see what dataops's loader and the upright widths and heights describe.

Each export is staged beside its target and swapped in whole
(:mod:`dataops.manifests.export_target`); its ``index.jsonl`` lists every file's own sha256
beside the catalog sha256. Re-exporting into the same folder reuses (links) unchanged files
of the earlier export.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from dataops.errors import DataopsError
from dataops.manifests.body import RowRecord
from dataops.manifests.errors import escaped
from dataops.manifests.export_target import previous_index, staged_export, write_index
from dataops.manifests.files import atomic_write
from dataops.manifests.loader import CLASS_KEY, check_blob
from dataops.manifests.upright import upright

BOXES_KEY = "boxes"
CLASSES_FILE = "classes.txt"
_BOX_SLACK = 1e-6
_LICENSE = {"id": 1, "name": "unspecified: see the catalog's source records", "url": ""}

Locate = Callable[[RowRecord], "str | os.PathLike[str] | bytes"]
"""Where an image's bytes are: a local path (hard-linked or copied) or the bytes themselves."""


class WrongKind(DataopsError):
    """The format cannot hold the manifest's labels (boxes vs image classes)."""


@dataclass
class ExportCounts:
    """What an export did per image (``upright``: written turned, also counted in written)."""

    linked: int = 0
    copied: int = 0
    written: int = 0
    skipped: int = 0
    upright: int = 0
    lossy: int = 0


def image_extension(row: RowRecord) -> str:
    """Lower-case suffix of the original file (``.jpg``), else of the blob key, else none."""
    for name in (urlparse(row["uri"]).path, row["blob_key"]):
        suffix = PurePosixPath(name).suffix.lower()
        if suffix:
            return suffix
    return ""


def safe_dir_name(name: str, what: str) -> str:
    """``name`` when it is one plain folder name; a class or split could otherwise climb out."""
    if name in ("", ".", "..") or any(ch in name for ch in "/\\\0"):
        raise DataopsError(f"{what} {name!r} cannot be a folder name")
    return name


@dataclass
class Placer:
    """Places images into a staged export and records the index entries."""

    staged: Path
    old_root: Path
    locate: Locate
    verify: bool
    counts: ExportCounts = field(default_factory=ExportCounts)
    entries: list[dict[str, Any]] = field(default_factory=list)
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.previous = previous_index(self.old_root)

    def _record(self, row: RowRecord, rel: str, sha: str, turned: str | None) -> None:
        self.entries.append(
            {
                "path": rel,
                "sha256": sha,
                "catalog_sha256": row["sha256"],
                "split": row["split"],
                "upright": turned,
            }
        )

    def _reuse(self, row: RowRecord, rel: str, dst: Path) -> bool:
        entry = self.previous.get(rel)
        if entry is None or entry.get("catalog_sha256") != row["sha256"]:
            return False
        try:
            os.link(self.old_root / rel, dst)
        except OSError:
            return False
        self.counts.skipped += 1
        self._record(row, rel, entry["sha256"], entry.get("upright"))
        return True

    def _write(self, dst: Path, data: bytes) -> None:
        tmp = atomic_write(dst.parent, dst.suffix, lambda p: p.write_bytes(data), fsync=False)
        os.replace(tmp, dst)
        self.counts.written += 1

    def place(self, row: RowRecord, rel: str) -> None:
        dst = self.staged / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if self._reuse(row, rel, dst):
            return
        source = self.locate(row)
        path = None if isinstance(source, bytes) else Path(source)
        if path is not None and not path.is_file():
            raise DataopsError(f"image {row['sha256']}: {path} is missing")
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        if self.verify:
            check_blob(row, hashlib.sha256(data).hexdigest())
        turned = upright(data)
        if turned is not None:
            self._write(dst, turned.data)
            self.counts.upright += 1
            self.counts.lossy += turned.method != "jpegtran"
            self._record(row, rel, hashlib.sha256(turned.data).hexdigest(), turned.method)
            return
        self._record(row, rel, row["sha256"], None)
        if path is None:
            self._write(dst, data)
            return
        try:
            os.link(path, dst)
            self.counts.linked += 1
        except OSError:
            tmp = atomic_write(dst.parent, dst.suffix, lambda p: shutil.copyfile(path, p), False)
            os.replace(tmp, dst)
            self.counts.copied += 1


def _class_of(row: RowRecord) -> str:
    label = row["label"]
    if not isinstance(label.get(CLASS_KEY), str):
        raise WrongKind(
            f"image {row['sha256']}: label {escaped(repr(label))} has no class; the folder "
            "layout holds image-level classes (use {format} coco for boxes)",
            fields=("format",),
        )
    return safe_dir_name(label[CLASS_KEY], "class")


def class_list(preferred: Sequence[str] | None, present: Iterable[str]) -> list[str]:
    """``preferred`` (the guideline's classes) then any other present class, sorted."""
    first = list(dict.fromkeys(preferred or ()))
    return first + sorted(set(present) - set(first))


def export_folder(
    rows: Iterable[RowRecord],
    destination: str | os.PathLike[str],
    locate: Locate,
    verify_sha256: bool = True,
    *,
    classes: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    marker: Mapping[str, Any] | None = None,
) -> ExportCounts:
    """``split/class/<sha256><ext>`` for image-classification tools (ImageFolder layout).

    Every class has a folder in every split, empty or not, so ImageFolder numbers the classes
    the same way in each split; ``classes.txt`` lists them in that (sorted) order.
    """
    all_rows = list(rows)
    names = [_class_of(row) for row in all_rows]
    folders = sorted(class_list(classes, names))
    for name in folders:
        safe_dir_name(name, "class")
    split_names = sorted(set(splits or ()) | {row["split"] for row in all_rows})
    for split in split_names:
        safe_dir_name(split, "split")
    with staged_export(destination, {"format": "folder", **(marker or {})}) as staged:
        placer = Placer(staged, Path(destination).absolute(), locate, verify_sha256)
        for split in split_names:
            for name in folders:
                (staged / split / name).mkdir(parents=True, exist_ok=True)
        for row, name in zip(all_rows, names, strict=True):
            placer.place(row, f"{row['split']}/{name}/{row['sha256']}{image_extension(row)}")
        (staged / CLASSES_FILE).write_text("".join(f"{name}\n" for name in folders))
        write_index(staged, placer.entries)
    return placer.counts


def label_boxes(row: RowRecord) -> list[dict[str, Any]]:
    """A row's boxes, refusing a label whose boxes are not a list."""
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
    rows: Sequence[RowRecord],
    split: str | None = None,
    file_name: Callable[[RowRecord], str] | None = None,
    *,
    classes: Sequence[str] | None = None,
    info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """COCO detection dict for the rows of ``split`` (all rows when None).

    Category ids follow ``classes`` (the guideline's class list; classes only seen in boxes
    come after it, sorted), so they stay the same across manifest versions whichever classes
    happen to have boxes. Image and annotation ids come from all given rows (images by
    sha256), so the files of different splits agree on them. Boxes become absolute pixel
    ``[x, y, width, height]`` from the row's (upright) width and height, with the box as
    its polygon ``segmentation``.
    """
    ordered = sorted(rows, key=lambda row: row["sha256"])
    boxes_of = [label_boxes(row) for row in ordered]
    names = class_list(classes, {box[CLASS_KEY] for boxes in boxes_of for box in boxes})
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
                    "license": _LICENSE["id"],
                    "sha256": row["sha256"],
                }
            )
        for box in boxes:
            annotation_id += 1
            if not selected:
                continue
            x, y = box["x"] * width, box["y"] * height
            w, h = box["w"] * width, box["h"] * height
            annotations.append(
                {
                    "id": annotation_id,
                    "image_id": image_id,
                    "category_id": category_ids[box[CLASS_KEY]],
                    "bbox": [x, y, w, h],
                    "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    return {
        "info": dict(info or {"description": "dataops manifest export"}),
        "licenses": [_LICENSE],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": name} for name, i in category_ids.items()],
    }


def _write_json(path: Path, document: Any) -> None:
    data = json.dumps(document, ensure_ascii=False, allow_nan=False).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(atomic_write(path.parent, ".json", lambda tmp: tmp.write_bytes(data)), path)


def require_boxes(rows: Iterable[RowRecord], fmt: str) -> None:
    """Refuse rows with image-level labels for a box format, naming the first one."""
    for row in rows:
        if BOXES_KEY not in row["label"]:
            raise WrongKind(
                f"{escaped(fmt)} export needs box labels, but image {row['sha256']} has "
                f"{escaped(repr(row['label']))} (a classification manifest): use {{format}} "
                "folder",
                fields=("format",),
            )


def export_coco(
    rows: Iterable[RowRecord],
    destination: str | os.PathLike[str],
    locate: Locate,
    verify_sha256: bool = True,
    *,
    classes: Sequence[str] | None = None,
    info: Mapping[str, Any] | None = None,
    marker: Mapping[str, Any] | None = None,
) -> ExportCounts:
    """``images/<split>/<sha256><ext>`` plus ``annotations/<split>.json`` per split."""
    all_rows = list(rows)
    require_boxes(all_rows, "COCO")
    for row in all_rows:
        safe_dir_name(row["split"], "split")
    with staged_export(destination, {"format": "coco", **(marker or {})}) as staged:
        placer = Placer(staged, Path(destination).absolute(), locate, verify_sha256)
        for row in all_rows:
            placer.place(row, f"images/{row['split']}/{row['sha256']}{image_extension(row)}")
        for split in sorted({row["split"] for row in all_rows}):
            coco = coco_dataset(
                all_rows,
                split,
                lambda row: f"{row['split']}/{row['sha256']}{image_extension(row)}",
                classes=classes,
                info=info,
            )
            _write_json(staged / "annotations" / f"{split}.json", coco)
        write_index(staged, placer.entries)
    return placer.counts
