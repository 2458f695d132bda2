"""YOLO exports (ultralytics' detection and classification layouts) read back by a parser
written from the format's spec and by datumaro, and one class numbering in every loader:
YOLO class ids, COCO category ids, the detection and classification ``TorchDataset``,
ImageFolder's rule and ``classes.txt``. Same catalog as test_exports: EXIF-rotated photos,
a class missing from a split, guideline classes nobody used, an image without boxes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image as PILImage

from dataops.manifests.body import RowRecord
from dataops.manifests.upright import ORIENTATION_TAG
from tests.integration.test_exports import (  # noqa: F401 (fixtures)
    CLASSES,
    OBJECTS,
    ROTATED,
    _create,
    _index,
    _rows,
    boxed,
    classified,
    photos,
)
from tests.support import datumaro_reader as datumaro
from tests.support.cli import run_cli, run_json

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def read_yolo(root: Path) -> tuple[list[str], dict[str, dict[str, list[list[float]]]]]:
    """(names, {split: {image path: [[class, cx, cy, w, h], ...]}}) by the ultralytics rules.

    ``data.yaml`` names each split's image folder relative to the file when it has no
    ``path``; an image's label file is its path with the last ``/images/`` replaced by
    ``/labels/`` and the suffix by ``.txt``; each line is ``class cx cy w h``, relative.
    """
    spec = yaml.safe_load((root / "data.yaml").read_text())
    names_field = spec["names"]
    names = [names_field[i] for i in range(len(names_field))]
    assert spec.get("nc", len(names)) == len(names)
    base = Path(spec["path"]) if spec.get("path") else root
    splits: dict[str, dict[str, list[list[float]]]] = {}
    for split in ("train", "val", "test"):
        if not spec.get(split):
            continue
        images = sorted(
            p for p in (base / spec[split]).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
        )
        splits[split] = {}
        for image in images:
            head, sep, tail = str(image).rpartition(f"{os.sep}images{os.sep}")
            assert sep, image
            label = Path(f"{head}{os.sep}labels{os.sep}{tail}").with_suffix(".txt")
            rows = []
            for line in label.read_text().splitlines() if label.exists() else []:
                fields = line.split()
                assert len(fields) == 5, line
                cls, *coords = int(fields[0]), *map(float, fields[1:])
                assert 0 <= cls < len(names)
                assert all(0.0 <= v <= 1.0 for v in coords), line
                rows.append([cls, *coords])
            splits[split][str(image)] = rows
    return names, splits


def _xyxy(cx: float, cy: float, w: float, h: float, width: int, height: int) -> list[float]:
    return [
        (cx - w / 2) * width,
        (cy - h / 2) * height,
        (cx + w / 2) * width,
        (cy + h / 2) * height,
    ]


def _manifest_xyxy(row: RowRecord) -> list[tuple[str, list[float]]]:
    w, h = row["width"], row["height"]
    return [
        (b["class"], [b["x"] * w, b["y"] * h, (b["x"] + b["w"]) * w, (b["y"] + b["h"]) * h])
        for b in row["label"]["boxes"]
    ]


@pytest.mark.slow
@pytest.mark.usefixtures("boxed")
def test_yolo_detection_reads_back_and_numbers_classes_like_coco_and_torch(
    tmp_path: Path,
) -> None:
    from dataops.manifests import TorchDataset
    from dataops.manifests.detection import BACKGROUND, collate

    _create("objects")
    rows = _rows("objects")
    by_sha = {row["sha256"]: row for row in rows}
    out = tmp_path / "yolo"
    result = run_json("manifest", "export", "objects", "--format", "yolo", "--out", str(out))
    assert result["upright"] == len(ROTATED)
    names, splits = read_yolo(out)
    assert names == list(OBJECTS)  # guideline order, 'vest' included though never drawn
    assert set(splits) == {row["split"] for row in rows} == {"train", "test"}
    assert sum(len(images) for images in splits.values()) == len(rows)

    coco = tmp_path / "coco"
    run_json("manifest", "export", "objects", "--format", "coco", "--out", str(coco))
    index = _index(out)
    for split, images in splits.items():
        categories = json.loads((coco / "annotations" / f"{split}.json").read_text())["categories"]
        assert {c["id"]: c["name"] for c in categories} == {i + 1: n for i, n in enumerate(names)}
        torch_split = TorchDataset("objects", split)
        assert torch_split.classes == [BACKGROUND, *names]
        torch_targets = {row["sha256"]: torch_split[i][1] for i, row in enumerate(torch_split.rows)}
        for path, boxes in images.items():
            rel = Path(path).relative_to(out).as_posix()
            row = by_sha[index[rel]["catalog_sha256"]]
            assert row["split"] == split
            with PILImage.open(path) as img:
                assert img.getexif().get(ORIENTATION_TAG, 1) == 1
                width, height = img.size  # the pixels as stored: no EXIF applied
            assert (width, height) == (row["width"], row["height"])
            read = sorted((names[c], _xyxy(*xywh, width, height)) for c, *xywh in boxes)
            expected = sorted(_manifest_xyxy(row))
            assert [n for n, _ in read] == [n for n, _ in expected]
            for (_, got), (_, want) in zip(read, expected, strict=True):
                np.testing.assert_allclose(got, want, atol=1e-5 * max(width, height))
            # The detection TorchDataset: same boxes, label = YOLO class + 1 = COCO id.
            target = torch_targets[row["sha256"]]
            pairs = sorted(
                (torch_split.classes[k], b)
                for k, b in zip(target["labels"].tolist(), target["boxes"].tolist(), strict=True)
            )
            assert [n for n, _ in pairs] == [n for n, _ in expected]
            for (_, got), (_, want) in zip(pairs, expected, strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-6)
    images, targets = collate([torch_split[0], torch_split[1]])
    assert len(images) == len(targets) == 2
    assert run_json("manifest", "verify-export", str(out))["ok"] is True

    read = datumaro.read(out, "yolo")
    assert read["labels"] == list(OBJECTS)
    assert len(read["items"]) == len(rows)
    for item in read["items"]:
        row = by_sha[Path(item["id"]).name]
        assert item["subset"] == row["split"]
        got = sorted((label, [x, y, x + w, y + h]) for label, x, y, w, h in item["boxes"])
        expected = sorted(_manifest_xyxy(row))
        assert [n for n, _ in got] == [n for n, _ in expected]
        for (_, g), (_, e) in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, atol=1e-5 * max(row["width"], row["height"]))


@pytest.mark.slow
@pytest.mark.usefixtures("classified")
def test_yolo_cls_layout_and_torch_dataset_share_classes_txt(tmp_path: Path) -> None:
    from dataops.manifests import TorchDataset

    _create("garments")
    rows = _rows("garments")
    out = tmp_path / "yolo-cls"
    result = run_json("manifest", "export", "garments", "--format", "yolo-cls", "--out", str(out))
    assert result["upright"] == len(ROTATED)
    classes = (out / "classes.txt").read_text().splitlines()
    assert classes == sorted(CLASSES)  # 'scarf' has no image and keeps its place
    index = _index(out)
    for split in ("train", "test"):
        # ultralytics' classification datasets use ImageFolder's rule: sorted sub-folders.
        folders = sorted(e.name for e in os.scandir(out / split) if e.is_dir())
        assert folders == classes
        dataset = TorchDataset("garments", split)
        assert dataset.classes == classes
        served = {row["sha256"]: dataset[i][1] for i, row in enumerate(dataset.rows)}
        files = sorted((out / split).rglob("*.*"))
        assert len(files) == len(served) == sum(r["split"] == split for r in rows)
        for path in files:
            catalog_sha = index[path.relative_to(out).as_posix()]["catalog_sha256"]
            assert served[catalog_sha] == folders.index(path.parent.name)
    assert run_json("manifest", "verify-export", str(out))["ok"] is True


@pytest.mark.usefixtures("classified")
def test_yolo_refuses_a_classification_manifest(tmp_path: Path) -> None:
    _create("garments")
    out = tmp_path / "yolo"
    proc = run_cli(
        "manifest", "export", "garments", "--format", "yolo", "--out", str(out), check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "yolo export needs box labels" in proc.stderr and "--format yolo-cls" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.usefixtures("boxed")
def test_yolo_cls_refuses_a_box_manifest(tmp_path: Path) -> None:
    _create("objects")
    out = tmp_path / "yolo-cls"
    proc = run_cli(
        "manifest", "export", "objects", "--format", "yolo-cls", "--out", str(out), check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "yolo-cls export needs image classes" in proc.stderr
    assert "--format yolo" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
