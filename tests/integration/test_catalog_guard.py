"""Commands never answer from a catalog nobody pointed them at: only `init`, `ingest` and `demo`
create one; everything else (the API server and workers included) refuses and says where it
looked. `TorchDataset` reads the configured catalog, an explicit one or a body file, and never
creates a database."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import REPO, run_json

READERS = [
    ["images", "list"],
    ["images", "show", "1"],
    ["jobs", "list"],
    ["jobs", "recover"],
    ["dedup", "run"],
    ["dedup", "groups"],
    ["select", "--strategy", "random", "--size", "1"],
    ["batches", "list"],
    ["manifest", "list"],
    ["audit", "list"],
    ["users", "list"],
    ["vendors", "list"],
    ["serve", "--port", "1"],
    ["worker"],
]


def dataops(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The console script run from ``cwd`` with no DATAOPS_* setting but ``env``."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("DATAOPS_")}
    full["PYTHONPATH"] = str(REPO)
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "dataops", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def refused(proc: subprocess.CompletedProcess[str], location: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert f"no catalog at {location}" in proc.stderr
    for hint in ("dataops init", "DATAOPS_DATABASE_URL", "DATAOPS_DATA_DIR", ".env"):
        assert hint in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", READERS, ids=lambda a: "-".join(a[:2]))
def test_commands_outside_the_project_folder_refuse_to_create_a_catalog(
    tmp_path: Path, args: list[str]
) -> None:
    proc = dataops(*args, cwd=tmp_path)

    refused(proc, str(tmp_path / ".dataops" / "catalog.db"))
    assert "current folder" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_folder_with_the_env_file_finds_its_catalog_and_a_subfolder_does_not(
    tmp_path: Path, image_dir: Path
) -> None:
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / ".env").write_text("DATAOPS_DATA_DIR=./catalog-data\n")
    assert dataops("init", cwd=project).returncode == 0
    assert dataops("ingest", str(image_dir), cwd=project).returncode == 0

    inside = dataops("images", "list", "--json", cwd=project)
    assert inside.returncode == 0 and '"sha256"' in inside.stdout

    below = dataops("images", "list", cwd=project / "notebooks")
    refused(below, str(project / "notebooks" / ".dataops" / "catalog.db"))
    assert f"{project / '.env'} configures one: run from {project}?" in below.stderr
    assert list((project / "notebooks").iterdir()) == []


def test_data_dir_from_the_environment_is_named(tmp_path: Path) -> None:
    gone = tmp_path / "moved-away"
    proc = dataops("batches", "list", cwd=tmp_path, env={"DATAOPS_DATA_DIR": str(gone)})

    refused(proc, str(gone / "catalog.db"))
    assert f"data dir {gone} from DATAOPS_DATA_DIR" in proc.stderr
    assert not gone.exists()


def test_sqlite_url_to_a_missing_file_is_refused_until_init(tmp_path: Path) -> None:
    target = tmp_path / "shared" / "catalog.db"
    env = {"DATAOPS_DATABASE_URL": f"sqlite:///{target}"}

    refused(dataops("jobs", "list", cwd=tmp_path, env=env), str(target))
    assert not target.parent.exists()
    assert dataops("init", cwd=tmp_path, env=env).returncode == 0
    assert dataops("jobs", "list", cwd=tmp_path, env=env).returncode == 0


@pytest.mark.postgres
def test_empty_postgres_database_is_refused_and_left_empty(
    tmp_path: Path, pg_url: str, image_dir: Path
) -> None:
    from sqlalchemy import create_engine, inspect

    env = {"DATAOPS_DATABASE_URL": pg_url}
    proc = dataops("images", "list", cwd=tmp_path, env=env)

    refused(proc, pg_url)
    assert "no catalog tables" in proc.stderr
    ingest = dataops("ingest", str(image_dir), cwd=tmp_path, env=env)
    assert ingest.returncode == 2 and "run `dataops init`" in ingest.stderr
    engine = create_engine(pg_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_creating_commands_still_create(tmp_path: Path, image_dir: Path) -> None:
    out = dataops("ingest", str(image_dir), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / ".dataops" / "catalog.db").is_file()


# --- TorchDataset -------------------------------------------------------------------------------


@pytest.fixture
def frozen(tmp_path: Path, corpus: Path, isolated_env: Path) -> dict[str, Any]:
    """A manifest of eight labeled product photos (bytes copied into the blob store)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    with open(corpus / "clothing-dataset-labels.csv", newline="") as handle:
        classes = {row["file"]: row["label"] for row in csv.DictReader(handle)}
    picks = [p for p in sorted((corpus / "clothing-dataset").glob("*.jpg")) if p.name in classes]
    for src in picks[:8]:
        shutil.copy(src, folder / src.name)
    run_json("ingest", str(folder), "--copy")
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "annotator", "label"])
        for src in picks[:8]:
            writer.writerow([str(folder / src.name), "ann-1", classes[src.name]])
    run_json("labels", "import", str(labels), "--accept")
    created = run_json("manifest", "create", "guarded", "--splits", "train=0.5,test=0.5")
    return {"data_dir": isolated_env, **created}


def _elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Configure an empty data dir, as a notebook started in the wrong folder would be."""
    from dataops.config import reset_settings
    from dataops.db import dispose_engines

    other = tmp_path / "elsewhere"
    monkeypatch.setenv("DATAOPS_DATA_DIR", str(other))
    dispose_engines()
    reset_settings()
    return other


def test_torch_dataset_never_creates_a_catalog(
    frozen: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataops.db import CatalogNotFound
    from dataops.manifests import TorchDataset

    assert len(TorchDataset("guarded", "train")) + len(TorchDataset("guarded", "test")) == 8
    other = _elsewhere(monkeypatch, tmp_path)
    with pytest.raises(CatalogNotFound, match=f"no catalog at {other / 'catalog.db'}"):
        TorchDataset("guarded", "train")
    missing = tmp_path / "nowhere"
    with pytest.raises(CatalogNotFound, match=f"{missing / 'catalog.db'}.*given as catalog="):
        TorchDataset("guarded", "train", catalog=missing)
    with pytest.raises(CatalogNotFound, match="given as catalog="):
        TorchDataset("guarded", "train", catalog=f"sqlite:///{missing / 'x.db'}")
    assert not other.exists() and not missing.exists()


def test_torch_dataset_from_an_explicit_catalog(
    frozen: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataops.manifests import TorchDataset

    configured = TorchDataset("guarded", "train")
    _elsewhere(monkeypatch, tmp_path)
    by_dir = TorchDataset("guarded", "train", catalog=frozen["data_dir"])
    by_url = TorchDataset(
        frozen["id"], "train", catalog=f"sqlite:///{frozen['data_dir']}/catalog.db"
    )
    for dataset in (by_dir, by_url):
        assert dataset.manifest_id == frozen["id"]
        assert dataset.rows == configured.rows
        image, target = dataset[0]
        assert image.size[0] > 0 and target == configured[0][1]


@pytest.mark.postgres
def test_torch_dataset_refuses_an_empty_postgres_database(pg_url: str) -> None:
    from dataops.db import CatalogNotFound
    from dataops.manifests import TorchDataset

    with pytest.raises(CatalogNotFound, match="no catalog tables; given as catalog="):
        TorchDataset("guarded", "train", catalog=pg_url)


def test_torch_dataset_from_a_body_file_without_any_catalog(
    frozen: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataops.manifests import TorchDataset
    from dataops.manifests.errors import ManifestTampered

    configured = TorchDataset("guarded", "test")
    other = _elsewhere(monkeypatch, tmp_path)
    blobs = (frozen["data_dir"] / "blobs").as_uri()

    stored = TorchDataset(frozen["path"], "test", storage=blobs)
    assert stored.manifest_id == frozen["id"] and stored.rows == configured.rows
    assert stored[0][1] == configured[0][1]

    copied = tmp_path / "my-manifest.jsonl"
    shutil.copy(frozen["path"], copied)
    assert TorchDataset(copied, "test", storage=blobs).manifest_id == frozen["id"]

    tampered = tmp_path / f"{frozen['id'][7:]}.jsonl"
    tampered.write_text(Path(frozen["path"]).read_text().replace('"test"', '"train"', 1))
    with pytest.raises(ManifestTampered, match=str(tampered)):
        TorchDataset(tampered, "test", storage=blobs)
    with pytest.raises(Exception, match="no manifest body file at"):
        TorchDataset(tmp_path / "missing.jsonl", "test")
    assert not other.exists()
