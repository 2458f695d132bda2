"""Rows-only data files stored with every manifest, and the class list recorded in its record:
read back by pandas (and duckdb when installed), checked by ``manifest verify``, and used by
exports and ``TorchDataset`` without reading the guideline tables again."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dataops.catalog.ingest import ingest
from dataops.catalog.models import OK, Image
from dataops.db import session_scope
from dataops.labeling.models import ACCEPTED, Guideline
from dataops.labeling.service import add_label_version
from dataops.manifests import classes as manifest_classes_module
from dataops.manifests import exporting, models, service
from dataops.manifests.body import verify_body
from dataops.manifests.create import create_manifest
from dataops.manifests.schemas import ManifestRequest
from dataops.storage import get_store
from tests.support.cli import run_cli, run_json

OLD = ("dress", "shirt", "hat")
NEW = ("shirt", "dress", "hat", "scarf")
HALVES = "train=0.5,test=0.5"


def _guideline(version: int, classes: tuple[str, ...]) -> int:
    with session_scope() as s:
        guideline = Guideline(
            name="garments",
            version=version,
            sha256=hashlib.sha256(f"garments:{version}".encode()).hexdigest(),
            kind="classification",
            classes=list(classes),
            body="",
            label_config="",
        )
        s.add(guideline)
        s.flush()
        return guideline.id


@pytest.fixture
def classified(catalog: str, tmp_path: Path, corpus: Path) -> list[Image]:
    """Eight photos labelled under two guideline versions."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for src in sorted((corpus / "clothing-dataset").glob("*.jpg"))[:8]:
        shutil.copy(src, folder / src.name)
    old, new = _guideline(1, OLD), _guideline(2, NEW)
    ingest([str(folder)], transaction=session_scope, copy=True)
    with session_scope() as s:
        images = list(s.scalars(select(Image).where(Image.status == OK).order_by(Image.sha256)))
        for i, image in enumerate(images):
            add_label_version(
                s,
                image_id=image.id,
                payload={"class": ("shirt", "dress", "hat")[i % 3]},
                source="csv",
                source_id=str(image.id),
                status=ACCEPTED,
                guideline_id=old if i < 3 else new,
            )
    assert len(images) == 8
    return images


def _body_rows(name: str) -> list[dict[str, Any]]:
    with session_scope() as s:
        return list(service.read_rows(service.get_manifest(s, name)))


def test_rows_files_are_stored_listed_read_and_verified(classified: list[Image]) -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    run_json("manifest", "create", "garments", "--splits", HALVES)
    shown = run_json("manifest", "show", "garments")
    paths = {name: Path(path) for name, path in shown["rows_files"].items()}
    assert set(paths) == {"rows.jsonl", "rows.parquet"}
    assert all(path.parent == Path(shown["path"]).parent / "rows" for path in paths.values())
    rows = _body_rows("garments")
    assert len(rows) == len(classified)

    frame = pd.read_json(paths["rows.jsonl"], lines=True)
    assert len(frame) == len(rows)
    for column in ("width", "height", "label_version_id"):
        assert frame[column].dtype == "int64", column
    assert list(frame["sha256"]) == [row["sha256"] for row in rows]
    assert list(frame["label"]) == [row["label"] for row in rows]
    first = json.loads(paths["rows.jsonl"].read_text().splitlines()[0])
    assert first == rows[0]  # no header line: the first line is the first row
    body = Path(shown["path"]).read_bytes()
    assert paths["rows.jsonl"].read_bytes() == body.split(b"\n", 1)[1]  # the body's row lines

    table = pq.read_table(paths["rows.parquet"])
    assert table.num_rows == len(rows)
    assert pa.types.is_struct(table.schema.field("label").type)
    assert table.schema.field("width").type == pa.int64()
    parquet = pd.read_parquet(paths["rows.parquet"])
    assert list(parquet["label"]) == [row["label"] for row in rows]
    assert parquet["height"].dtype == "int64"
    try:
        import duckdb
    except ImportError:
        duckdb = None
    if duckdb is not None:
        for path in paths.values():
            assert duckdb.sql(f"SELECT count(*) FROM '{path}'").fetchone() == (len(rows),)

    assert run_json("manifest", "verify", "garments")["ok"] is True
    paths["rows.parquet"].chmod(0o644)
    paths["rows.parquet"].write_bytes(paths["rows.parquet"].read_bytes()[:-10])
    result = run_cli("manifest", "verify", "garments", check=False)
    assert result.returncode != 0
    assert "rows files: rows.parquet: sha256" in result.stdout + result.stderr


def test_a_second_name_for_the_same_rows_keeps_the_first_names_files(
    classified: list[Image],
) -> None:
    run_json("manifest", "create", "first", "--splits", HALVES)
    run_json("manifest", "create", "second", "--splits", HALVES)
    first = run_json("manifest", "show", "first")
    second = run_json("manifest", "show", "second")
    assert first["id"] == second["id"]
    assert first["rows_files"] == second["rows_files"]
    assert run_json("manifest", "verify", "first")["ok"] is True


def test_class_list_is_recorded_and_used_without_the_guideline_tables(
    classified: list[Image], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataops.manifests import TorchDataset

    with session_scope() as s:
        request = ManifestRequest(name="garments", splits=HALVES)
        manifest = create_manifest(s, request, actor="tester")
        recorded = manifest.selection["classes"]
    assert recorded == ["shirt", "dress", "hat", "scarf"]  # newest version's order first

    def unread(*_: object) -> list[str]:
        raise AssertionError("the guideline tables were read again")

    monkeypatch.setattr(manifest_classes_module, "guideline_classes", unread)
    with session_scope() as s:
        exporting.export_manifest(s, "garments", tmp_path / "folder", fmt="folder")
        exporting.export_manifest(s, "garments", tmp_path / "cvat", fmt="cvat")
    assert (tmp_path / "folder" / "classes.txt").read_text().splitlines() == sorted(recorded)
    dataset = TorchDataset("garments", "train")
    assert dataset.classes == sorted(recorded)


def test_a_manifest_recorded_before_the_class_list_falls_back_and_still_verifies(
    classified: list[Image],
) -> None:
    with session_scope() as s:
        made = create_manifest(s, ManifestRequest(name="today", splits=HALVES), actor="tester")
        selection = {
            key: value
            for key, value in made.selection.items()
            if key not in ("classes", "rows_files")
        }
        # A record as manifests were written before: no class list, no rows files.
        s.add(
            models.Manifest(
                name="yesterday",
                content_hash=made.content_hash,
                seed=made.seed,
                splits=made.splits,
                selection=selection,
                row_count=made.row_count,
                split_counts=made.split_counts,
                body_key=made.body_key,
                parquet_key=made.parquet_key,
                datasheet_key=made.datasheet_key,
            )
        )
    with session_scope() as s:
        old = service.get_manifest(s, "yesterday")
        rows = service.read_rows(old)
        assert manifest_classes_module.manifest_classes(s, old, rows) == list(NEW)
        assert service.manifest_out(s, old).rows_files == {}
        path = get_store().local_path(old.body_key)
        assert path is not None and verify_body(path, old.content_hash) == []
    assert run_json("manifest", "verify", "yesterday")["ok"] is True
