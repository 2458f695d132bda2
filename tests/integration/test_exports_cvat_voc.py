"""Pascal VOC and CVAT for images 1.1 exports read back by datumaro (the CVAT team's reader),
on the catalog of test_exports: EXIF-rotated photos, a class missing from a split, guideline
classes nobody used, an image without boxes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
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


def _pixel_boxes(row: RowRecord) -> list[list[Any]]:
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


def _assert_upright(path: Path, row: RowRecord) -> None:
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


# --- labels made in CVAT, imported back ----------------------------------------------------


def _cvat_labels() -> list[tuple[str, dict[str, Any], str]]:
    """(image sha256, payload, "annotator/status") of every label imported from CVAT."""
    from sqlalchemy import select

    from dataops.catalog.models import Image as CatalogImage
    from dataops.db import session_scope
    from dataops.labeling.models import Annotator, LabelVersion

    with session_scope() as s:
        rows = s.execute(
            select(CatalogImage.sha256, LabelVersion.payload, Annotator.name, LabelVersion.status)
            .join(CatalogImage, CatalogImage.id == LabelVersion.image_id)
            .join(Annotator, Annotator.id == LabelVersion.annotator_id)
            .where(LabelVersion.source == "cvat")
        ).all()
        return [(sha, payload, f"{name}/{status}") for sha, payload, name, status in rows]


@pytest.mark.slow
@pytest.mark.usefixtures("boxed")
def test_cvat_labels_import_back_by_sha256_and_by_file_name(tmp_path: Path) -> None:
    """Pre-annotations exported for CVAT, edited there, come back as the annotator's labels."""
    _create("objects")
    by_sha = {row["sha256"]: row for row in _rows("objects")}
    out = tmp_path / "cvat"
    _export("objects", "cvat", out)
    import xml.etree.ElementTree as ET

    tree = ET.parse(out / "train.xml")  # noqa: S314 (our own export)
    images = tree.getroot().findall("image")
    first = images[0]
    sha = first.get("name", "").split(".")[0]
    # The annotator moves the first box of the first image and drops the rest.
    for box in first.findall("box")[1:]:
        first.remove(box)
    box = first.find("box")
    assert box is not None
    box.set("label", "vest")
    box.set("xtl", "10")
    box.set("ytl", "20")
    box.set("xbr", "110")
    box.set("ybr", "70")
    edited = tmp_path / "annotations.xml"
    tree.write(edited, encoding="utf-8", xml_declaration=True)

    args = ("labels", "import", str(edited), "--annotator", "alice@vendor.test")
    report = run_json(*args, "--guideline", "objects:1")
    assert report["errors"] == [] and report["rows"] == len(images)
    labeled = [i for i in images if i.findall("box")]
    assert report["created"] == len(labeled)
    assert report["skipped"] == len(images) - len(labeled)  # no shapes: not labeled in CVAT
    stored = {sha_: payload for sha_, payload, _ in _cvat_labels()}
    row = by_sha[sha]
    assert stored[sha]["boxes"] == [
        {
            "class": "vest",
            "x": pytest.approx(10 / row["width"]),
            "y": pytest.approx(20 / row["height"]),
            "w": pytest.approx(100 / row["width"]),
            "h": pytest.approx(50 / row["height"]),
        }
    ]
    for other in labeled[1:]:
        other_sha = other.get("name", "").split(".")[0]
        got, want = stored[other_sha]["boxes"], by_sha[other_sha]["label"]["boxes"]
        assert [b["class"] for b in got] == [b["class"] for b in want]
        for g, w in zip(got, want, strict=True):
            assert [g[k] for k in "xywh"] == pytest.approx([w[k] for k in "xywh"], abs=1e-5)
    assert {who for *_, who in _cvat_labels()} == {"alice@vendor.test/submitted"}
    assert run_json(*args, "--guideline", "objects:1")["existing"] == len(labeled)

    # A task made from the original files: names are matched against recorded locations.
    plain = by_sha[next(s for s in by_sha if s != sha)]
    name = Path(plain["uri"]).name
    doc = f"""<?xml version="1.0"?><annotations><version>1.1</version><meta/>
      <image id="0" name="{name}" width="{plain["width"]}" height="{plain["height"]}">
        <tag label="helmet"/></image></annotations>"""
    by_name = tmp_path / "by-name.xml"
    by_name.write_text(doc)
    result = run_json("labels", "import", str(by_name), "--annotator", "bob")
    assert result["created"] == 1 and result["errors"] == []
    assert {"class": "helmet"} in [p for s_, p, _ in _cvat_labels() if s_ == plain["sha256"]]


@pytest.mark.usefixtures("boxed")
def test_cvat_import_is_all_or_nothing_with_row_errors(tmp_path: Path) -> None:
    rotated = next(r for r in _rows_or_create() if Path(r["uri"]).name == "rotated-0.jpg")
    doc = f"""<?xml version="1.0"?><annotations><version>1.1</version><meta/>
      <image id="0" name="nowhere.jpg" width="10" height="10"><tag label="helmet"/></image>
      <image id="1" name="rotated-0.jpg" width="{rotated["height"]}" height="{rotated["width"]}">
        <box label="helmet" xtl="1" ytl="1" xbr="5" ybr="5"/></image>
      <image id="2" name="{rotated["sha256"]}.jpg" width="{rotated["width"]}"
        height="{rotated["height"]}"><polygon label="helmet" points="1,1;5,1;5,5"/></image>
      <image id="3" name="{rotated["sha256"]}.jpg" width="{rotated["width"]}"
        height="{rotated["height"]}"><box label="helmet" xtl="1" ytl="1" xbr="5" ybr="5"/></image>
    </annotations>"""
    path = tmp_path / "bad.xml"
    path.write_text(doc)
    missing = run_cli("labels", "import", str(path), check=False)
    assert missing.returncode != 0 and "--annotator" in missing.stderr
    assert "Traceback" not in missing.stderr
    proc = run_cli("labels", "import", str(path), "--annotator", "carol", "--json", check=False)
    assert proc.returncode != 0, proc.stdout
    import json

    errors = {e["row"]: e["message"] for e in json.loads(proc.stdout)["errors"]}
    assert sorted(errors) == [1, 2, 3]
    assert "no image was ingested from a file named nowhere.jpg" in errors[1]
    assert "upright" in errors[2]  # CVAT saw the sideways original
    assert "polygon is not imported" in errors[3]
    assert _cvat_labels() == []


def _rows_or_create() -> list[RowRecord]:
    _create("objects")
    return _rows("objects")


@pytest.mark.usefixtures("boxed")
def test_cvat_import_over_http_needs_the_annotator(api: Any, make_user: Any) -> None:
    row = _rows_or_create()[0]
    width, height = row["width"], row["height"]
    doc = f"""<?xml version="1.0"?><annotations><version>1.1</version><meta/>
      <image id="0" name="{row["sha256"]}.jpg" width="{width}" height="{height}">
        <box label="helmet" xtl="0" ytl="0" xbr="{width / 2}" ybr="{height}"/>
      </image></annotations>"""
    ops = {"Authorization": f"Bearer {make_user('labeling_ops')}"}
    body = {"format": "cvat", "content": doc}
    missing = api.post("/v1/labels/import", json=body, headers=ops)
    assert missing.status_code == 400, missing.text
    assert "annotator" in missing.text
    done = api.post("/v1/labels/import", json={**body, "annotator": "dana"}, headers=ops)
    assert done.status_code == 200, done.text
    assert done.json()["created"] == 1
    [(sha, payload, who)] = _cvat_labels()
    assert sha == row["sha256"] and who == "dana/submitted"
    assert payload["boxes"] == [{"class": "helmet", "x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0}]
    bad = api.post(
        "/v1/labels/import",
        json={**body, "annotator": "dana", "content": doc.replace("box", "polygon")},
        headers=ops,
    )
    assert bad.status_code == 422 and "polygon" in bad.text


@pytest.mark.slow
@pytest.mark.usefixtures("boxed")
def test_cvat_xml_written_by_datumaro_imports_as_the_manifest_boxes(tmp_path: Path) -> None:
    """datumaro's own CVAT writer (what CVAT's export is built on) produces a file that
    imports back to the manifest's boxes."""
    rows = _rows_or_create()
    by_sha = {row["sha256"]: row for row in rows}
    out = tmp_path / "cvat"
    _export("objects", "cvat", out)
    again = tmp_path / "datumaro-cvat"
    datumaro.read(out, "cvat", convert=(again, "cvat"))
    files = sorted(again.glob("*.xml"))
    assert [p.name for p in files] == ["test.xml", "train.xml"]
    total = 0
    for path in files:
        report = run_json("labels", "import", str(path), "--annotator", "erin")
        assert report["errors"] == []
        total += report["created"]
    assert total == sum(1 for row in rows if row["label"]["boxes"])
    stored = {sha: payload for sha, payload, _ in _cvat_labels()}
    for sha, payload in stored.items():
        want = by_sha[sha]["label"]["boxes"]
        got = payload["boxes"]
        assert sorted(b["class"] for b in got) == sorted(b["class"] for b in want)
        for g, w in zip(
            sorted(got, key=lambda b: b["class"]),
            sorted(want, key=lambda b: b["class"]),
            strict=True,
        ):
            assert [g[k] for k in "xywh"] == pytest.approx([w[k] for k in "xywh"], abs=1e-4)
