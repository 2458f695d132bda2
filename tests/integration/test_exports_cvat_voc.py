"""Pascal VOC and CVAT for images 1.1 exports read back by datumaro (the CVAT team's reader),
on the catalog of test_exports: EXIF-rotated photos, a class missing from a split, guideline
classes nobody used, an image without boxes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from dataops.manifests.body import ManifestRow
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


def _pixel_boxes(row: ManifestRow) -> list[list[Any]]:
    width, height = row["width"], row["height"]
    return [
        [b["class"], b["x"] * width, b["y"] * height, b["w"] * width, b["h"] * height]
        for b in row["label"]["boxes"]
    ]


def _assert_same_boxes(read: list[list[Any]], expected: list[list[Any]]) -> None:
    assert len(read) == len(expected)
    for got, want in zip(sorted(read), sorted(expected), strict=True):
        assert got[0] == want[0]
        assert got[1:] == pytest.approx(want[1:], abs=2e-3)


def _assert_upright(path: Path, row: ManifestRow) -> None:
    with PILImage.open(path) as img:
        assert img.size == (row["width"], row["height"])
        assert img.getexif().get(ORIENTATION_TAG, 1) == 1


def _export(name: str, fmt: str, out: Path) -> dict[str, Any]:
    result = run_json("manifest", "export", name, "--format", fmt, "--out", str(out))
    assert result["format"] == fmt
    assert run_json("manifest", "verify-export", str(out))["ok"] is True
    return result


@pytest.mark.slow
@pytest.mark.usefixtures("boxed")
def test_voc_export_reads_back_in_datumaro(tmp_path: Path) -> None:
    _create("objects")
    rows = _rows("objects")
    by_sha = {row["sha256"]: row for row in rows}
    out = tmp_path / "voc"
    result = _export("objects", "voc", out)
    assert result["upright"] == len(ROTATED)

    dataset = datumaro.read(out, "voc")
    assert dataset["version"] == "1.13.0"
    assert dataset["labels"] == list(OBJECTS)
    assert sorted(item["id"] for item in dataset["items"]) == sorted(by_sha)
    index = _index(out)
    for item in dataset["items"]:
        row = by_sha[item["id"]]
        assert item["subset"] == row["split"]
        assert item["size"] == [row["height"], row["width"]]
        _assert_same_boxes(item["boxes"], _pixel_boxes(row))
        rel = Path(item["image"]).relative_to(out).as_posix()
        assert rel.startswith("JPEGImages/") and index[rel]["catalog_sha256"] == row["sha256"]
        _assert_upright(out / rel, row)
    assert sum(len(item["boxes"]) for item in dataset["items"]) == sum(
        len(row["label"]["boxes"]) for row in rows
    )
    person = {row["split"] for row in rows for b in row["label"]["boxes"] if b["class"] == "person"}
    assert len(person) == 1  # one split has no 'person'; it is still a class of both
    assert (out / "labelmap.txt").read_text().splitlines()[1:] == [f"{c}:::" for c in OBJECTS]


@pytest.mark.usefixtures("classified")
def test_voc_refuses_a_classification_manifest(tmp_path: Path) -> None:
    _create("garments")
    out = tmp_path / "voc"
    proc = run_cli(
        "manifest", "export", "garments", "--format", "voc", "--out", str(out), check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "VOC export needs box labels" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.usefixtures("boxed")
def test_cvat_box_export_reads_back_in_datumaro(tmp_path: Path) -> None:
    _create("objects")
    rows = _rows("objects")
    by_sha = {row["sha256"]: row for row in rows}
    out = tmp_path / "cvat"
    result = _export("objects", "cvat", out)
    assert result["upright"] == len(ROTATED)
    assert sorted(p.name for p in out.glob("*.xml")) == ["test.xml", "train.xml"]

    dataset = datumaro.read(out, "cvat")
    # The guideline's classes, "vest" included although nobody drew one.
    assert dataset["labels"] == list(OBJECTS)
    assert sorted(item["id"] for item in dataset["items"]) == sorted(by_sha)
    index = _index(out)
    for item in dataset["items"]:
        row = by_sha[item["id"]]
        assert item["subset"] == row["split"]
        assert item["size"] == [row["height"], row["width"]]
        _assert_same_boxes(item["boxes"], _pixel_boxes(row))
        assert item["tags"] == []
        rel = Path(item["image"]).relative_to(out).as_posix()
        assert rel == f"images/{row['split']}/{Path(rel).name}"
        assert index[rel]["catalog_sha256"] == row["sha256"]
        _assert_upright(out / rel, row)


@pytest.mark.slow
@pytest.mark.usefixtures("classified")
def test_cvat_classification_export_writes_tags(tmp_path: Path) -> None:
    _create("garments")
    rows = _rows("garments")
    by_sha = {row["sha256"]: row for row in rows}
    out = tmp_path / "cvat"
    _export("garments", "cvat", out)

    dataset = datumaro.read(out, "cvat")
    assert dataset["labels"] == list(CLASSES)  # newest guideline's order; 'scarf' unused
    assert sorted(item["id"] for item in dataset["items"]) == sorted(by_sha)
    for item in dataset["items"]:
        row = by_sha[item["id"]]
        assert item["subset"] == row["split"]
        assert item["tags"] == [row["label"]["class"]] and item["boxes"] == []
