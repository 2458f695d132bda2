"""A ``torch.utils.data.Dataset`` over manifest rows, checking every image it serves.

torch is imported when the first dataset is built, never by ``import dataops.manifests``.
The dataset holds only rows and the callables it was given, so it pickles into DataLoader
worker processes; each worker re-hashes an image the first time it reads it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dataops.errors import DataopsError
from dataops.manifests.detection import BACKGROUND, box_target, detection_classes, is_box_row

if TYPE_CHECKING:
    from PIL import Image

    from dataops.manifests.body import RowRecord

CLASS_KEY = "class"


class BlobIntegrityError(DataopsError):
    """An image's bytes no longer hash to the sha256 the manifest recorded."""

    status_code = 409
    code = "blob_integrity"


def check_blob(row: RowRecord, actual_sha256: str) -> None:
    """Refuse bytes that are not the image the manifest froze, naming the file."""
    if actual_sha256 != row["sha256"]:
        raise BlobIntegrityError(
            f"image {row['uri']} (blob {row['blob_key']}) has sha256 {actual_sha256}, "
            f"manifest says {row['sha256']}: the stored file changed"
        )


def class_names(rows: Iterable[RowRecord], preferred: Sequence[str] | None = None) -> list[str]:
    """Sorted class names over all rows and ``preferred`` (the guideline's classes).

    Sorted as torchvision's ``ImageFolder`` sorts class folders, so the folder export's
    ``classes.txt`` and this loader give each class the same index in every split, also one
    that no row of this manifest uses.
    """
    names = set(preferred or ())
    for row in rows:
        label = row["label"]
        if not isinstance(label, Mapping) or not isinstance(label.get(CLASS_KEY), str):
            raise DataopsError(
                f"image {row['sha256']}: label {label!r} has no {CLASS_KEY!r} string"
            )
        names.add(label[CLASS_KEY])
    return sorted(names)


class _SplitRows:
    """Everything ``RowsDataset`` does; torch only adds the ``Dataset`` base class."""

    def __init__(
        self,
        rows: Iterable[RowRecord],
        split: str,
        open_blob: Callable[[RowRecord], bytes],
        transform: Callable[..., Any] | None = None,
        verify_sha256: bool = True,
        classes: Sequence[str] | None = None,
    ) -> None:
        all_rows = list(rows)
        self.detection = bool(all_rows) and all(is_box_row(row) for row in all_rows)
        if self.detection:
            self.classes = [BACKGROUND, *detection_classes(all_rows, classes)]
        else:
            self.classes = class_names(all_rows, classes)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.rows = [row for row in all_rows if row["split"] == split]
        self.split = split
        self.open_blob = open_blob
        self.transform = transform
        self.verify_sha256 = verify_sha256
        self._verified: set[int] = set()

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        from PIL import Image, ImageOps

        row = self.rows[index]
        data = self.open_blob(row)
        if self.verify_sha256 and index not in self._verified:
            check_blob(row, hashlib.sha256(data).hexdigest())
            self._verified.add(index)
        with Image.open(io.BytesIO(data)) as img:
            image = ImageOps.exif_transpose(img).convert("RGB")
        if self.detection:
            return self._detection_item(row, image)
        target = self.class_to_idx[row["label"][CLASS_KEY]]
        if self.transform is not None:
            return self.transform(image), target
        return image, target

    def _detection_item(self, row: RowRecord, image: Image.Image) -> tuple[Any, Any]:
        import numpy as np
        import torch

        if image.size != (row["width"], row["height"]):
            raise DataopsError(
                f"image {row['uri']}: upright size {image.size} is not the manifest's "
                f"{(row['width'], row['height'])}, so its boxes would not fit"
            )
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        target = box_target(row, self.class_to_idx)
        if self.transform is not None:
            transformed: tuple[Any, Any] = self.transform(pixels, target)
            return transformed
        return pixels, target


def _make_rows_dataset() -> type:
    from torch.utils.data import Dataset

    class RowsDataset(_SplitRows, Dataset[tuple[Any, Any]]):
        """(image, class index) pairs of one split; classes sorted over all given rows.

        Rows with box labels give (float32 CHW image tensor, torchvision detection target)
        instead (:mod:`dataops.manifests.detection`; batch them with its ``collate``), and
        ``transform`` then gets and returns (image tensor, target).

        ``open_blob`` gets a row and returns the image bytes; it must be picklable (a
        module-level function or a ``functools.partial`` of one) when the DataLoader uses
        worker processes. ``transform`` gets an RGB PIL image with EXIF orientation applied;
        without one the dataset yields that PIL image. Each worker hashes an image the first
        time it reads it; bytes that differ raise :class:`BlobIntegrityError` naming the file.
        """

    RowsDataset.__module__ = __name__
    RowsDataset.__qualname__ = "RowsDataset"
    return RowsDataset


if TYPE_CHECKING:
    from torch.utils.data import Dataset

    class RowsDataset(_SplitRows, Dataset[tuple[Any, Any]]):
        """What :func:`_make_rows_dataset` builds, declared for the type checker only."""


def __getattr__(name: str) -> Any:
    """Build ``RowsDataset`` on first use (also when unpickled in a worker process)."""
    if name == "RowsDataset":
        cls = _make_rows_dataset()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
