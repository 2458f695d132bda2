"""Box manifests as torchvision detection targets, and one class numbering for every loader."""

import hashlib
import pickle
import shutil
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image, ImageOps

from dataops.errors import DataopsError
from dataops.manifests.detection import BACKGROUND, collate
from dataops.manifests.loader import class_names

ROTATED = "metadata-extractor-images/Samsung GT-I9000 (Galaxy S).jpg"  # EXIF orientation 6
CLASSES = ("person", "helmet", "vest")  # guideline order; "vest" is never drawn


def read_uri(row):
    return Path(urlparse(row["uri"]).path).read_bytes()


def _row(path, label, split="train"):
    data = path.read_bytes()
    with Image.open(path) as img:
        width, height = ImageOps.exif_transpose(img).size
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "blob_key": f"blobs/{path.name}",
        "uri": path.as_uri(),
        "split": split,
        "label_version_id": 1,
        "label": label,
        "guideline_version": "objects:1",
        "dup_group_id": None,
        "width": width,
        "height": height,
    }


@pytest.fixture
def box_rows(tmp_path, corpus):
    """A rotated phone photo with two boxes, a plain photo with one, one with none."""
    plain = sorted((corpus / "clothing-dataset").glob("*.jpg"))[:2]
    paths = []
    for i, src in enumerate([corpus / ROTATED, *plain]):
        paths.append(tmp_path / f"img-{i}.jpg")
        shutil.copy(src, paths[-1])
    boxes = [
        [
            {"class": "helmet", "x": 0.1, "y": 0.2, "w": 0.5, "h": 0.25},
            {"class": "person", "x": 0.5, "y": 0.5, "w": 0.25, "h": 0.5},
        ],
        [{"class": "helmet", "x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0}],
        [],
    ]
    return [
        _row(p, {"boxes": b}, "train" if i < 2 else "test")
        for i, (p, b) in enumerate(zip(paths, boxes, strict=True))
    ]


def dataset(*args, **kwargs):
    from dataops.manifests.loader import RowsDataset

    return RowsDataset(*args, **kwargs)


def test_box_rows_yield_torchvision_detection_targets(box_rows):
    import torch

    train = dataset(box_rows, "train", read_uri, classes=CLASSES)
    assert train.classes == [BACKGROUND, *CLASSES]
    assert len(train) == 2
    for i, row in enumerate(box_rows[:2]):
        image, target = train[i]
        assert image.dtype == torch.float32 and image.shape == (3, row["height"], row["width"])
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        assert set(target) == {"boxes", "labels"}
        assert target["boxes"].dtype == torch.float32
        assert target["labels"].dtype == torch.int64
        boxes = row["label"]["boxes"]
        assert target["boxes"].shape == (len(boxes), 4)
        assert target["labels"].shape == (len(boxes),)
        w, h = row["width"], row["height"]
        expected = [
            [b["x"] * w, b["y"] * h, (b["x"] + b["w"]) * w, (b["y"] + b["h"]) * h] for b in boxes
        ]
        np.testing.assert_allclose(
            target["boxes"].numpy(), np.array(expected).reshape(-1, 4), rtol=1e-6
        )
        assert [train.classes[k] for k in target["labels"].tolist()] == [b["class"] for b in boxes]
        # Label i is COCO category id i of the export: the guideline's order, 1-based.
        assert target["labels"].tolist() == [CLASSES.index(b["class"]) + 1 for b in boxes]


def test_rotated_photo_is_served_upright_with_its_boxes(box_rows):
    row = box_rows[0]
    with Image.open(Path(urlparse(row["uri"]).path)) as raw:
        assert raw.getexif().get(0x0112) == 6
        raw_size = raw.size
        upright = np.asarray(ImageOps.exif_transpose(raw).convert("RGB"), dtype=np.float32) / 255
    assert (row["width"], row["height"]) == raw_size[::-1] != raw_size
    image, target = dataset(box_rows, "train", read_uri)[0]
    assert np.array_equal(image.permute(1, 2, 0).numpy(), upright)
    x0, y0, x1, y1 = target["boxes"][1].tolist()  # the person box, lower right quarter
    assert (x0, y0, x1, y1) == pytest.approx((0.5 * 480, 0.5 * 640, 0.75 * 480, 640))


def test_image_without_boxes_has_empty_targets_and_collate_keeps_lists(box_rows):
    import torch.utils.data

    test = dataset(box_rows, "test", read_uri, classes=CLASSES)
    _image, target = test[0]
    assert target["boxes"].shape == (0, 4) and target["boxes"].dtype == torch.float32
    assert target["labels"].shape == (0,) and target["labels"].dtype == torch.int64
    pickled = pickle.dumps(dataset(box_rows, "train", read_uri, classes=CLASSES))
    train = pickle.loads(pickled)  # noqa: S301 (bytes made just above)
    loader = torch.utils.data.DataLoader(train, batch_size=2, collate_fn=collate)
    images, targets = next(iter(loader))
    assert isinstance(images, list) and isinstance(targets, list)
    assert [tuple(i.shape) for i in images] == [(3, r["height"], r["width"]) for r in box_rows[:2]]
    assert [len(t["labels"]) for t in targets] == [2, 1]


def test_transform_gets_and_returns_image_and_target(box_rows):
    def flip(image, target):
        width = image.shape[-1]
        boxes = target["boxes"].clone()
        boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
        return image.flip(-1), {**target, "boxes": boxes}

    plain = dataset(box_rows, "train", read_uri)[0]
    image, target = dataset(box_rows, "train", read_uri, transform=flip)[0]
    assert image.flip(-1).equal(plain[0])
    assert target["boxes"][0].tolist() == pytest.approx(
        [480 * 0.4, 640 * 0.2, 480 * 0.9, 640 * 0.45]
    )


def test_bad_boxes_are_refused_naming_the_image(box_rows):
    box_rows[1]["label"]["boxes"][0]["w"] = 1.5
    with pytest.raises(DataopsError, match=box_rows[1]["sha256"]):
        dataset(box_rows, "train", read_uri)


def test_absent_class_keeps_its_guideline_index():
    rows = [
        {"sha256": "a", "label": {"class": "shirt"}},
        {"sha256": "b", "label": {"class": "hat"}},
    ]
    guideline = ["shirt", "dress", "hat", "scarf"]
    # Sorted as ImageFolder sorts the folder export's class folders (classes.txt).
    assert class_names(rows, guideline) == ["dress", "hat", "scarf", "shirt"]
    assert class_names(rows) == ["hat", "shirt"]
