"""Exports read back by the tools that consume them: ImageFolder's layout rules, pycocotools,
pandas and pyarrow, on a catalog with EXIF-rotated phone photos, a class missing from a split,
guideline classes nobody used, and boxes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from dataops.catalog.ingest import ingest
from dataops.catalog.models import OK, Image
from dataops.db import session_scope
from dataops.labeling.models import ACCEPTED, Guideline
from dataops.labeling.service import add_label_version
from dataops.manifests import exporting, service
from dataops.manifests.body import RowRecord, manifest_id
from dataops.manifests.create import create_manifest
from dataops.manifests.export_target import INDEX, MARKER
from dataops.manifests.files import locate_image
from dataops.manifests.schemas import ManifestRequest
from dataops.manifests.upright import ORIENTATION_TAG
from dataops.storage import get_store
from tests.support.cli import run_cli, run_json

# Orientation 6 (turned 90°) photos: 640x480 can be turned losslessly; 311x450 cannot
# (jpegtran -perfect needs whole 8/16-pixel blocks) and is re-encoded.
ROTATED = (
    "metadata-extractor-images/Samsung GT-I9000 (Galaxy S).jpg",
    "metadata-extractor-images/Sony Cybershot (3).jpg",
    "imagededup-testdata/ukbench09268.jpg",
)
OLD_CLASSES = ("dress", "shirt", "hat")
CLASSES = ("shirt", "dress", "hat", "scarf")  # newest guideline: its order gives the ids
OBJECTS = ("person", "helmet", "vest")  # "vest" never drawn
HALVES = "train=0.5,test=0.5"


@pytest.fixture
def photos(tmp_path: Path, corpus: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for src in sorted((corpus / "clothing-dataset").glob("*.jpg"))[:7]:
        shutil.copy(src, folder / src.name)
    for i, name in enumerate(ROTATED):
        shutil.copy(corpus / name, folder / f"rotated-{i}.jpg")
    return folder


def _guideline(name: str, version: int, kind: str, classes: tuple[str, ...]) -> int:
    with session_scope() as s:
        guideline = Guideline(
            name=name,
            version=version,
            sha256=hashlib.sha256(f"{name}:{version}".encode()).hexdigest(),
            kind=kind,
            classes=list(classes),
            body="",
            label_config="",
        )
        s.add(guideline)
        s.flush()
        return guideline.id


def _images(photos: Path) -> list[Image]:
    ingest([str(photos)], transaction=session_scope, copy=True)
    with session_scope() as s:
        images = list(s.scalars(select(Image).where(Image.status == OK).order_by(Image.sha256)))
    assert len(images) == 10
    return images


def _accept(image_id: int, payload: dict[str, Any], guideline_id: int) -> None:
    with session_scope() as s:
        add_label_version(
            s,
            image_id=image_id,
            payload=payload,
            source="csv",
            source_id=f"{image_id}",
            status=ACCEPTED,
            guideline_id=guideline_id,
        )


@pytest.fixture
def classified(catalog: str, photos: Path) -> list[Image]:
    """Labels under two guideline versions; 'hat' on one image only, 'scarf' on none."""
    old = _guideline("garments", 1, "classification", OLD_CLASSES)
    new = _guideline("garments", 2, "classification", CLASSES)
    images = _images(photos)
    for i, image in enumerate(images):
        cls = "hat" if i == 0 else ("shirt", "dress")[i % 2]
        _accept(image.id, {"class": cls}, old if i < 3 else new)
    return images


@pytest.fixture
def boxed(catalog: str, photos: Path) -> list[Image]:
    """Boxes; 'person' on one image only, 'vest' on none, one image with no object."""
    guideline = _guideline("objects", 1, "detection", OBJECTS)
    images = _images(photos)
    for i, image in enumerate(images):
        boxes = [{"class": "helmet", "x": 0.1, "y": 0.2, "w": 0.5, "h": 0.25}]
        if i == 0:
            boxes.append({"class": "person", "x": 0.5, "y": 0.5, "w": 0.25, "h": 0.5})
        _accept(image.id, {"boxes": boxes if i != 1 else []}, guideline)
    return images


def _create(name: str, **options: Any) -> str:
    with session_scope() as s:
        request = ManifestRequest(name=name, splits=HALVES, **options)
        return create_manifest(s, request, actor="tester").name


def _rows(name: str) -> list[RowRecord]:
    with session_scope() as s:
        return service.read_rows(service.get_manifest(s, name))


def _index(root: Path) -> dict[str, dict[str, Any]]:
    lines = (root / INDEX).read_text().splitlines()
    return {entry["path"]: entry for entry in map(json.loads, lines)}


def _catalog_bytes(row: RowRecord) -> bytes:
    location = locate_image(get_store(), row)
    return location if isinstance(location, bytes) else Path(location).read_bytes()


def _image_folder_classes(split_dir: Path) -> dict[str, int]:
    """torchvision ImageFolder's rule: sorted sub-folder names are the class indices."""
    names = sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir())
    return {name: i for i, name in enumerate(names)}


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.parent != root)


# --- 1 and 2: upright pixels, the index, every class in every split ---------------------------


@pytest.mark.slow
def test_folder_export_is_upright_indexed_and_numbers_classes_alike(
    classified: list[Image], tmp_path: Path
) -> None:
    from dataops.manifests.loader import RowsDataset

    _create("garments")
    rows = _rows("garments")
    out = tmp_path / "folder"
    result = run_json("manifest", "export", "garments", "--format", "folder", "--out", str(out))
    assert result["upright"] == len(ROTATED)
    assert len(list(out.rglob("*.jpg"))) == len(rows) == 10

    index = _index(out)
    assert len(index) == len(rows)
    by_sha = {row["sha256"]: row for row in rows}
    methods = set()
    for rel, entry in index.items():
        data = (out / rel).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        row = by_sha[entry["catalog_sha256"]]
        with PILImage.open(io.BytesIO(data)) as img:
            # What a loader that ignores EXIF sees: the upright size, no orientation left.
            assert img.getexif().get(ORIENTATION_TAG, 1) == 1
            assert img.size == (row["width"], row["height"])
            pixels = np.asarray(img.convert("RGB"), dtype=np.int16)
        split_rows = [r for r in rows if r["split"] == row["split"]]
        ours = RowsDataset(rows, row["split"], _catalog_bytes)[split_rows.index(row)][0]
        assert np.abs(pixels - np.asarray(ours, dtype=np.int16)).mean() < 2.0
        if entry["upright"] is None:
            assert entry["sha256"] == entry["catalog_sha256"]
        else:
            assert entry["sha256"] != entry["catalog_sha256"]
            methods.add(entry["upright"])
    assert len([e for e in index.values() if e["upright"]]) == len(ROTATED)
    if shutil.which("jpegtran"):
        assert methods == {"jpegtran", "re-encoded"}

    # 'hat' has one image, so one split lacks it; 'scarf' (newest guideline) has none.
    present = {
        split: {r["label"]["class"] for r in rows if r["split"] == split}
        for split in ("train", "test")
    }
    assert any("hat" not in classes for classes in present.values())
    expected = sorted(CLASSES)
    assert (out / "classes.txt").read_text().splitlines() == expected
    for split in ("train", "test"):
        assert _image_folder_classes(out / split) == {n: i for i, n in enumerate(expected)}

    # The index verifies a copied export without the catalog; a changed file is caught.
    assert run_json("manifest", "verify-export", str(out))["ok"] is True
    turned = next(rel for rel, entry in index.items() if entry["upright"])
    plain = next(rel for rel, entry in index.items() if not entry["upright"])
    (out / turned).unlink()
    (out / turned).write_bytes(b"changed")
    (out / plain).unlink()
    (out / plain).write_bytes(b"changed too")
    (out / "train" / "hat" / "extra.jpg").write_bytes(b"stray")
    proc = run_cli("manifest", "verify-export", str(out), "--json", check=False)
    assert proc.returncode == 1
    problems = json.loads(proc.stdout)["problems"]
    assert [p.split(":")[0] for p in problems] == [*sorted([turned, plain]), "train/hat/extra.jpg"]


# --- 3: a used target folder -------------------------------------------------------------------


def test_reexport_replaces_stale_files_and_refuses_foreign_folders(
    classified: list[Image], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create("all")
    rows = _rows("all")
    out = tmp_path / "exports" / "out"
    with session_scope() as s:
        first = exporting.export_manifest(s, "all", out, fmt="folder")
    assert first["linked"] + first["copied"] + first["written"] == len(rows)
    before = {p.relative_to(out): p.read_bytes() for p in _files(out)}

    # Another manifest (other splits) into the same folder: only its own files remain.
    with session_scope() as s:
        request = ManifestRequest(name="other", splits="a=0.5,b=0.5", seed=7)
        create_manifest(s, request, actor="tester")
        second = exporting.export_manifest(s, "other", out, fmt="folder")
    assert second["skipped"] == 0
    images = list(out.rglob("*.jpg"))
    assert len(images) == len(rows)
    assert {p.relative_to(out).parts[0] for p in images} <= {"a", "b"}
    assert not (out / "train").exists() and not (out / "test").exists()
    assert len(_index(out)) == len(rows)
    assert json.loads((out / MARKER).read_text())["manifest"] == "other"

    # The same manifest again reuses the files of the export it replaces.
    with session_scope() as s:
        again = exporting.export_manifest(s, "other", out, fmt="folder")
    assert again["skipped"] == len(rows)

    # A failure half-way leaves the earlier export whole and nothing beside it.
    calls = {"n": 0}
    real = locate_image

    def failing(store: Any, row: RowRecord) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk went away")
        return real(store, row)

    monkeypatch.setattr(exporting, "locate_image", failing)
    snapshot = {p.relative_to(out): p.read_bytes() for p in _files(out)}
    with session_scope() as s, pytest.raises(OSError, match="disk went away"):
        exporting.export_manifest(s, "all", out, fmt="folder")
    assert {p.relative_to(out): p.read_bytes() for p in _files(out)} == snapshot
    assert snapshot != before
    assert [p.name for p in out.parent.iterdir()] == ["out"]

    # A folder dataops did not write is refused, untouched.
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    proc = run_cli(
        "manifest", "export", "all", "--format", "folder", "--out", str(foreign), check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "not empty" in proc.stderr and MARKER in proc.stderr and "Traceback" not in proc.stderr
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


# --- 4: COCO -----------------------------------------------------------------------------------


def test_coco_refuses_a_classification_manifest(classified: list[Image], tmp_path: Path) -> None:
    _create("garments")
    out = tmp_path / "coco"
    proc = run_cli(
        "manifest", "export", "garments", "--format", "coco", "--out", str(out), check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "COCO export needs box labels" in proc.stderr and "--format folder" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_coco_loads_in_pycocotools_with_guideline_category_ids(
    boxed: list[Image], tmp_path: Path
) -> None:
    from pycocotools.coco import COCO

    _create("objects")
    rows = _rows("objects")
    by_sha = {row["sha256"]: row for row in rows}
    out = tmp_path / "coco"
    result = run_json("manifest", "export", "objects", "--format", "coco", "--out", str(out))
    assert result["upright"] == len(ROTATED)
    person_splits = {
        r["split"] for r in rows for b in r["label"]["boxes"] if b["class"] == "person"
    }
    assert len(person_splits) == 1  # 'person' is missing from the other split
    index = _index(out)
    total = 0
    for split in ("train", "test"):
        coco = COCO(str(out / "annotations" / f"{split}.json"))
        coco.info()
        assert coco.dataset["info"]["version"] == result["id"]
        assert coco.dataset["licenses"]
        cats = coco.loadCats(coco.getCatIds())
        assert [(c["id"], c["name"]) for c in cats] == [(i, n) for i, n in enumerate(OBJECTS, 1)]
        for image in coco.loadImgs(coco.getImgIds()):
            total += 1
            row = by_sha[image["sha256"]]
            path = out / "images" / image["file_name"]
            assert index[str(path.relative_to(out))]["catalog_sha256"] == row["sha256"]
            with PILImage.open(path) as img:
                # Pixels as COCO's width and height say, without applying EXIF.
                assert img.size == (image["width"], image["height"])
                assert img.getexif().get(ORIENTATION_TAG, 1) == 1
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
            assert len(anns) == len(row["label"]["boxes"])
            for ann, box in zip(
                sorted(anns, key=lambda a: a["id"]), row["label"]["boxes"], strict=True
            ):
                assert coco.loadCats([ann["category_id"]])[0]["name"] == box["class"]
                mask = coco.annToMask(ann)
                assert mask.shape == (image["height"], image["width"])
                assert mask.sum() == pytest.approx(ann["area"], rel=0.05)
                assert ann["iscrowd"] == 0
    assert total == len(rows)
    assert run_json("manifest", "verify-export", str(out))["ok"] is True


# --- 5: rows-only data files -------------------------------------------------------------------


def test_rows_files_read_without_a_phantom_row(classified: list[Image], tmp_path: Path) -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    _create("garments")
    rows = _rows("garments")
    out = tmp_path / "rows"
    result = run_json("manifest", "export", "garments", "--format", "rows", "--out", str(out))
    assert manifest_id((out / "manifest.jsonl").read_bytes()) == result["id"]

    frame = pd.read_json(out / "rows.jsonl", lines=True)
    assert len(frame) == len(rows)
    assert frame["width"].dtype == "int64" and frame["height"].dtype == "int64"
    assert sorted(frame["label"].map(lambda label: label["class"])) == sorted(
        r["label"]["class"] for r in rows
    )

    table = pq.read_table(out / "rows.parquet")
    assert table.num_rows == len(rows)
    assert pa.types.is_struct(table.schema.field("label").type)
    assert table.schema.field("width").type == pa.int64()
    parquet = pd.read_parquet(out / "rows.parquet")
    assert list(parquet["sha256"]) == [r["sha256"] for r in rows]
    assert list(parquet["label"]) == [r["label"] for r in rows]


def test_rows_files_type_boxes(boxed: list[Image], tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _create("objects")
    rows = _rows("objects")
    out = tmp_path / "rows"
    run_json("manifest", "export", "objects", "--format", "rows", "--out", str(out))
    table = pq.read_table(out / "rows.parquet")
    boxes = table.schema.field("label").type.field("boxes").type
    assert pa.types.is_list(boxes)
    assert boxes.value_type.field("x").type == pa.float64()
    assert boxes.value_type.field("class").type == pa.string()
    labels = table.column("label").to_pylist()
    assert [len(label["boxes"]) for label in labels] == [len(r["label"]["boxes"]) for r in rows]
