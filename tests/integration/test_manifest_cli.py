"""`dataops manifest ...` as a user runs it: JSON shapes, exit codes and error lines."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import run_cli, run_json

ROW_KEYS = {"sha256", "split", "label", "dup_group_id"}


@pytest.fixture
def labeled(catalog: str, tmp_path: Path, corpus: Path) -> dict[str, Any]:
    """Twelve product photos ingested (copied) from source 'studio', labels imported as accepted."""
    folder = tmp_path / "photos"
    folder.mkdir()
    with open(corpus / "clothing-dataset-labels.csv", newline="") as handle:
        classes = {row["file"]: row["label"] for row in csv.DictReader(handle)}
    picks = [p for p in sorted((corpus / "clothing-dataset").glob("*.jpg")) if p.name in classes]
    picks = picks[:12]
    for src in picks:
        shutil.copy(src, folder / src.name)
    ingested = run_json("ingest", str(folder), "--copy", "--source", "studio")
    assert ingested["new"] == len(picks)
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "annotator", "label"])
        for src in picks:
            writer.writerow([str(folder / src.name), "ann-1", classes[src.name]])
    run_json("labels", "import", str(labels), "--accept")
    return {"folder": folder, "count": len(picks), "classes": {classes[p.name] for p in picks}}


def _fails(*args: str) -> tuple[int, str, str]:
    proc = run_cli(*args, check=False)
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def test_create_show_list_shapes_and_errors(labeled: dict[str, Any]) -> None:
    created = run_json("manifest", "create", "clothes-v1", "--seed", "3", "--stratify-by", "label")
    assert {"name", "id", "rows", "splits", "path"} <= created.keys()
    assert created["name"] == "clothes-v1"
    assert created["id"].startswith("sha256:")
    assert len(created["id"]) == 71
    assert created["rows"] == labeled["count"] == sum(created["splits"].values())
    assert set(created["splits"]) == {"train", "val", "test"}
    assert Path(created["path"]).is_file()

    for ref in ("clothes-v1", created["id"], created["id"][7:19]):
        shown = run_json("manifest", "show", ref)
        assert shown["id"] == created["id"]
        assert shown["name"] == "clothes-v1"
        assert len(shown["rows"]) == labeled["count"]
        assert all(row.keys() == ROW_KEYS for row in shown["rows"])
        assert {row["label"]["class"] for row in shown["rows"]} == labeled["classes"]
    assert run_json("manifest", "show", "clothes-v1", "--limit", "2")["rows"] == shown["rows"][:2]

    again = run_json("manifest", "create", "clothes-v1b", "--seed", "3")
    assert again["id"] == created["id"]
    listed = run_json("manifest", "list")
    assert [m["name"] for m in listed["manifests"]] == ["clothes-v1", "clothes-v1b"]
    assert run_json("manifest", "show", "clothes-v1b")["names"] == ["clothes-v1", "clothes-v1b"]

    code, _, err = _fails("manifest", "create", "clothes-v1", "--seed", "4")
    assert code == 2
    assert "already exists" in err
    assert len(err.strip().splitlines()) == 1
    assert "not 1" in _fails("manifest", "create", "x", "--splits", "train=0.7,test=0.2")[2]
    assert "no batch" in _fails("manifest", "create", "x", "--from-batches", "999")[2]
    assert "no manifest" in _fails("manifest", "show", "nope")[2]
    assert "accepted label" in _fails("manifest", "create", "x", "--query", "source=elsewhere")[2]
    scoped = run_json("manifest", "create", "studio", "--query", "source=studio", "--seed", "3")
    assert scoped["id"] == created["id"]
    assert scoped["selection"]["query"] == {"source": "studio"}


def test_verify_exit_codes_and_reasons(labeled: dict[str, Any]) -> None:
    created = run_json("manifest", "create", "v1")
    report = run_json("manifest", "verify", "v1")
    assert report["ok"] is True
    assert report["images_checked"] == labeled["count"]
    assert run_json("manifest", "verify", created["id"], "--body-only")["ok"] is True

    shown = run_json("manifest", "show", "v1")
    blob = run_json("images", "show", shown["rows"][0]["sha256"])["blob_key"]
    store = Path(created["path"]).parents[2]
    (store / blob).unlink()
    code, out, err = _fails("manifest", "verify", "v1", "--json")
    assert code == 1
    result = json.loads(out)
    assert [m["sha256"] for m in result["missing"]] == [shown["rows"][0]["sha256"]]
    assert "1 images missing" in err
    assert run_json("manifest", "verify", "v1", "--body-only")["ok"] is True

    body = Path(created["path"])
    body.write_bytes(body.read_bytes() + b"{}\n")
    code, _, err = _fails("manifest", "verify", "v1", "--body-only")
    assert code == 1
    assert "content hash" in err


def test_diff_datasheet_and_export(labeled: dict[str, Any], tmp_path: Path) -> None:
    run_json("manifest", "create", "a", "--seed", "1", "--splits", "train=0.5,test=0.5")
    run_json("manifest", "create", "b", "--seed", "1", "--splits", "train=0.5,test=0.5")
    same = run_json("manifest", "diff", "a", "b")
    assert same["leak"] is False
    assert same["counts"]["unchanged"] == labeled["count"]
    assert same["counts"]["added"] == same["counts"]["removed"] == 0
    totals = {
        cls: sum(per.get(cls, 0) for per in same["class_counts"]["b"].values())
        for cls in labeled["classes"]
    }
    assert sum(totals.values()) == labeled["count"]

    run_json("manifest", "create", "c", "--seed", "2", "--splits", "train=0.5,test=0.5")
    code, out, err = _fails("manifest", "diff", "a", "c", "--json")
    assert code == 1
    leak = json.loads(out)
    assert leak["leak"] is True
    assert leak["counts"]["split_moves"] == len(leak["split_moves"]) > 0
    assert "leak" in err
    child = run_json(
        "manifest", "create", "a2", "--parent", "a", "--seed", "2", "--splits", "train=0.5,test=0.5"
    )
    assert child["parent"] == "a"
    assert run_json("manifest", "diff", "a", "a2")["leak"] is False

    sheet = run_json("manifest", "datasheet", "a", "--out", str(tmp_path / "sheet"))
    assert sheet["composition"]["rows"] == labeled["count"]
    assert sheet["labeling"]["annotators"] == 1
    markdown = (tmp_path / "sheet" / "a.datasheet.md").read_text()
    assert "## Composition" in markdown
    assert "## Known limitations" in markdown
    assert (
        json.loads((tmp_path / "sheet" / "a.datasheet.json").read_text())["manifest"]["name"] == "a"
    )
    printed = run_cli("manifest", "datasheet", "a").stdout
    assert printed.startswith("# Datasheet: a")

    exported = run_json(
        "manifest", "export", "a", "--format", "folder", "--out", str(tmp_path / "f")
    )
    assert exported["rows"] == labeled["count"]
    images = list((tmp_path / "f").rglob("*.jpg"))
    assert len(images) == labeled["count"]
    assert {p.parents[1].name for p in images} <= {"train", "test"}
    # Image classes have no COCO form: refused before anything is written.
    code, _, err = _fails(
        "manifest", "export", "a", "--format", "coco", "--out", str(tmp_path / "c")
    )
    assert code == 2 and "needs box labels" in err
    assert not (tmp_path / "c").exists()
