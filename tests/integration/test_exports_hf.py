"""Hugging Face export read back by the ``datasets`` library itself: ``load_dataset(folder)``
yields the manifest's splits and rows, decodes upright images (the pixels dataops's own
loader serves) and class labels by the guideline's classes, without a workaround. Same
catalog as test_exports: EXIF-rotated photos, a class missing from a split, boxes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dataops.db import session_scope
from dataops.manifests.body import RowRecord
from dataops.manifests.create import create_manifest
from dataops.manifests.schemas import ManifestRequest
from dataops.manifests.upright import ORIENTATION_TAG
from tests.integration.test_exports import (  # noqa: F401 (fixtures)
    CLASSES,
    OBJECTS,
    ROTATED,
    _catalog_bytes,
    _create,
    _rows,
    boxed,
    classified,
    photos,
)
from tests.support.cli import run_cli, run_json


def _load(out: Path, cache: Path) -> Any:
    import datasets

    return datasets.load_dataset(str(out), cache_dir=str(cache))


def _check_images(loaded: Any, rows: list[RowRecord]) -> None:
    """Each decoded image is upright, untagged and has the pixels RowsDataset serves."""
    from dataops.manifests.loader import RowsDataset

    by_sha = {row["sha256"]: row for row in rows}
    for split, table in loaded.items():
        served = RowsDataset(rows, split, _catalog_bytes)
        position = {row["sha256"]: i for i, row in enumerate(served.rows)}
        for item in table:
            row = by_sha[item["sha256"]]
            assert item["split"] == row["split"] == split
            image = item["image"]
            assert image.getexif().get(ORIENTATION_TAG, 1) == 1
            assert image.size == (row["width"], row["height"])
            ours = served[position[row["sha256"]]][0]
            if not isinstance(ours, type(image)) and hasattr(ours, "permute"):
                ours = (ours.permute(1, 2, 0).numpy() * 255.0).round()
            pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
            assert np.abs(pixels - np.asarray(ours, dtype=np.float64)).mean() < 2.0


@pytest.mark.slow
@pytest.mark.usefixtures("classified")
def test_hf_export_loads_splits_upright_images_and_class_labels(tmp_path: Path) -> None:
    import datasets

    _create("garments")
    rows = _rows("garments")
    out = tmp_path / "hf"
    result = run_json("manifest", "export", "garments", "--format", "hf", "--out", str(out))
    assert result["upright"] == len(ROTATED)
    loaded = _load(out, tmp_path / "cache")
    splits = {row["split"] for row in rows}
    assert set(loaded) == splits == {"train", "test"}
    for split in splits:
        assert loaded[split].num_rows == sum(r["split"] == split for r in rows)
    feature = loaded["train"].features["label"]["class"]
    assert isinstance(feature, datasets.ClassLabel)
    assert isinstance(loaded["train"].features["image"], datasets.Image)
    # ImageFolder's rule, as classes.txt and TorchDataset: 'scarf' (no image) keeps its place.
    assert feature.names == sorted(CLASSES)
    by_sha = {row["sha256"]: row for row in rows}
    for table in loaded.values():
        for item in table.remove_columns("image"):
            assert (
                feature.int2str(item["label"]["class"]) == by_sha[item["sha256"]]["label"]["class"]
            )
    _check_images(loaded, rows)

    # A re-export replaces the folder whole; a foreign folder is refused.
    run_json("manifest", "export", "garments", "--format", "hf", "--out", str(out))
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
    ]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    proc = run_cli(
        "manifest", "export", "garments", "--format", "hf", "--out", str(foreign), check=False
    )
    assert proc.returncode != 0 and "not empty" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.usefixtures("boxed")
def test_hf_export_loads_boxes_with_guideline_class_ids(tmp_path: Path) -> None:
    import datasets

    with session_scope() as s:
        request = ManifestRequest(name="objects", splits="train=0.4,val=0.3,test=0.3")
        create_manifest(s, request, actor="tester")
    rows = _rows("objects")
    out = tmp_path / "hf"
    result = run_json("manifest", "export", "objects", "--format", "hf", "--out", str(out))
    assert result["upright"] == len(ROTATED)
    loaded = _load(out, tmp_path / "cache")
    # Split names as the manifest has them: 'val' is not renamed 'validation'.
    assert set(loaded) == {row["split"] for row in rows} == {"train", "val", "test"}
    assert sum(table.num_rows for table in loaded.values()) == len(rows)
    boxes_feature = loaded["train"].features["label"]["boxes"]
    feature = boxes_feature.feature["class"]
    assert isinstance(feature, datasets.ClassLabel)
    assert feature.names == list(OBJECTS)  # guideline order = YOLO ids; 'vest' never drawn
    by_sha = {row["sha256"]: row for row in rows}
    empty = 0
    for table in loaded.values():
        for item in table.remove_columns("image"):
            expected = by_sha[item["sha256"]]["label"]["boxes"]
            got = item["label"]["boxes"]
            empty += not got
            assert [feature.int2str(b["class"]) for b in got] == [b["class"] for b in expected]
            for box, want in zip(got, expected, strict=True):
                np.testing.assert_allclose(
                    [box[k] for k in "xywh"], [want[k] for k in "xywh"], rtol=0, atol=0
                )
    assert empty == 1
    _check_images(loaded, rows)


@pytest.mark.usefixtures("classified")
def test_hf_export_refuses_a_split_name_datasets_cannot_hold(tmp_path: Path) -> None:
    from dataops.errors import DataopsError
    from dataops.manifests.formats_hf import export_hf

    rows = _rows(_create("garments"))
    bad = [{**row, "split": "hold-out"} for row in rows]
    with pytest.raises(DataopsError, match="'hold-out' cannot be a datasets split name"):
        export_hf(bad, tmp_path / "hf", _catalog_bytes)  # type: ignore[arg-type]
    assert not (tmp_path / "hf").exists()


@pytest.mark.usefixtures("classified")
def test_hf_export_refuses_boxes_beside_image_classes(tmp_path: Path) -> None:
    from dataops.manifests.export import WrongKind
    from dataops.manifests.formats_hf import export_hf

    rows = _rows(_create("garments"))
    box = {"class": "hat", "x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2}
    mixed = [*rows[:-1], {**rows[-1], "label": {"boxes": [box]}}]
    with pytest.raises(WrongKind, match=f"image {rows[-1]['sha256']} has"):
        export_hf(mixed, tmp_path / "hf", _catalog_bytes)  # type: ignore[arg-type]
    assert not (tmp_path / "hf").exists()
