"""Box labels as torchvision's detection models take them, and a collate that keeps lists.

A target is ``{"boxes": float32 (N, 4) absolute xyxy pixels, "labels": int64 (N,)}`` in the
upright image (EXIF orientation applied), the coordinates manifest widths and heights use.
Label 0 is the background, as in torchvision's detection models; class ``i`` of the class
list is label ``i + 1``, which is also its COCO category id in ``dataops manifest export``.
torch is imported only when a target is built.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dataops.errors import DataopsError

if TYPE_CHECKING:
    from dataops.manifests.body import RowRecord

BOXES_KEY = "boxes"
CLASS_KEY = "class"
BACKGROUND = "__background__"
_SLACK = 1e-6


def is_box_row(row: RowRecord) -> bool:
    label = row["label"]
    return isinstance(label, Mapping) and BOXES_KEY in label


def row_boxes(row: RowRecord) -> list[tuple[str, float, float, float, float]]:
    """(class, x, y, w, h) of each box, relative to the upright image; bad boxes refused."""
    boxes = row["label"].get(BOXES_KEY)
    if not isinstance(boxes, list):
        raise DataopsError(f"image {row['sha256']}: label {BOXES_KEY!r} must be a list")
    out = []
    for box in boxes:
        if not isinstance(box, Mapping) or not isinstance(box.get(CLASS_KEY), str):
            raise DataopsError(f"image {row['sha256']}: box {box!r} has no {CLASS_KEY!r} string")
        coords = [box.get(key) for key in ("x", "y", "w", "h")]
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in coords):
            raise DataopsError(f"image {row['sha256']}: box {box!r} needs numbers x, y, w, h")
        x, y, w, h = (float(v) for v in coords)  # type: ignore[arg-type]
        if min(x, y, w, h) < 0 or x + w > 1 + _SLACK or y + h > 1 + _SLACK:
            raise DataopsError(
                f"image {row['sha256']}: box {box!r} is not relative x, y, w, h inside [0, 1]"
            )
        out.append((box[CLASS_KEY], x, y, w, h))
    return out


def detection_classes(rows: Iterable[RowRecord], preferred: Sequence[str] | None) -> list[str]:
    """``preferred`` (the guideline's classes, in order) then other drawn classes, sorted."""
    first = list(dict.fromkeys(preferred or ()))
    drawn = {name for row in rows for name, *_ in row_boxes(row)}
    return first + sorted(drawn - set(first))


def box_target(row: RowRecord, label_of: Mapping[str, int]) -> dict[str, Any]:
    """The torchvision detection target of one row, in the row's upright pixel size."""
    import torch

    width, height = row["width"], row["height"]
    boxes = row_boxes(row)
    xyxy = [[x * width, y * height, (x + w) * width, (y + h) * height] for _, x, y, w, h in boxes]
    return {
        "boxes": torch.tensor(xyxy, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor([label_of[name] for name, *_ in boxes], dtype=torch.int64),
    }


def collate(batch: Sequence[tuple[Any, Any]]) -> tuple[list[Any], list[Any]]:
    """(images, targets) as lists: detection images differ in size and box count."""
    return [image for image, _ in batch], [target for _, target in batch]
