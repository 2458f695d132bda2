"""`dataops dedup ...` as a user runs it: the JSON contract, contact sheets, leak exit codes and
one-line errors, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from dataops.dedup.contact_sheet import layout
from dataops.dedup.transforms import TRANSFORMS
from tests.support.cli import run_cli, run_json
from tests.support.corpus import CORPUS

SUMMARY_KEYS = {
    "job_id",
    "images",
    "new_images",
    "pairs",
    "stage_pairs",
    "views_computed",
    "geometric_checks",
    "edges_added",
    "groups",
    "new_groups",
    "merged",
    "split_reported",
    "oversize_groups",
    "split_groups",
    "semantic_pairs",
    "full",
    "rebuilt_index",
    "rebuild_reason",
    "shards",
    "gpu",
    "changed",
    "seconds",
}
ENV = {"DATAOPS_INGEST__WORKERS": "1"}


@pytest.fixture
def photos(tmp_path: Path, catalog: str) -> Path:
    """Two photos with two edited copies each, one unrelated photo, and a split per file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    kodak = sorted((CORPUS / "kodak-photocd").glob("*.png"))
    splits = ["file,split,site"]
    for k, path in enumerate(kodak[:2]):
        shutil.copy(path, folder / path.name)
        splits.append(f"{path.name},train,a")
        with PILImage.open(path) as img:
            rgb = img.convert("RGB")
        rng = np.random.default_rng(k)
        for edit in ("resize", "text"):
            name = f"{path.stem}_{edit}.png"
            TRANSFORMS[edit](rgb, rng).save(folder / name)
            # The first photo's text copy sits in the test split: a leak.
            split = "test" if (k, edit) == (0, "text") else "train"
            splits.append(f"{name},{split},a")
    shutil.copy(kodak[12], folder / kodak[12].name)
    (tmp_path / "splits.csv").write_text("\n".join(splits) + "\n")
    return folder


def _ingest(photos: Path) -> None:
    csv = photos.parent / "splits.csv"
    run_json("ingest", str(photos), "--attributes", str(csv), env=ENV)


def test_run_is_incremental_and_groups_follow_the_contract(photos: Path, tmp_path: Path) -> None:
    _ingest(photos)

    first = run_json("dedup", "run", env=ENV)
    again = run_json("dedup", "run", env=ENV)
    listing = run_json("dedup", "groups", env=ENV)

    assert set(first) == SUMMARY_KEYS
    assert first["stage_pairs"]["hash"] == first["pairs"] == 6, "two groups of three"
    assert (first["images"], first["new_images"], first["groups"], first["new_groups"]) == (
        7,
        7,
        2,
        2,
    )
    assert first["changed"]
    assert not first["rebuilt_index"]
    assert set(again) == SUMMARY_KEYS
    assert (again["new_images"], again["pairs"], again["changed"]) == (0, 0, False)
    assert set(listing) == {"groups"}
    assert len(listing["groups"]) == 2
    for group in listing["groups"]:
        assert set(group) == {"id", "representative", "size", "members"}
        assert group["size"] == 3
        assert len(group["members"]) == 3
        assert group["members"][0]["image_id"] == group["representative"]
        for member in group["members"]:
            assert set(member) == {"image_id", "uri", "sha256"}
            assert Path(member["uri"]).parent == photos
            assert len(member["sha256"]) == 64
    names = {Path(m["uri"]).stem for m in listing["groups"][0]["members"]}
    assert names == {"kodim01", "kodim01_resize", "kodim01_text"}

    group = listing["groups"][0]["id"]
    out = tmp_path / "sheet.png"
    shown = run_json("dedup", "show", str(group), "--out", str(out), env=ENV)
    plain = run_cli("dedup", "show", str(group), env=ENV)

    assert shown["path"] == str(out)
    assert shown["tiles"] == 3
    stages = {m["image_id"]: m["stage"] for m in shown["members"]}
    assert stages.pop(shown["representative"]) is None
    assert set(stages.values()) == {"hash"}
    sheet = PILImage.open(out)
    assert sheet.text["dataops-tiles"] == "3"
    assert sheet.size == layout(3)[2:]
    default = Path(plain.stdout.strip().splitlines()[-1])
    assert default.name == f"group-{group}.png"
    assert default.is_file()


def test_leaks_are_listed_with_a_failing_exit_code(photos: Path) -> None:
    _ingest(photos)
    run_json("dedup", "run", env=ENV)

    leaky = run_cli("dedup", "leaks", "--split-attr", "split", "--json", env=ENV, check=False)
    clean = run_cli("dedup", "leaks", "--split-attr", "site", "--json", env=ENV, check=False)

    assert leaky.returncode == 1
    report = json.loads(leaky.stdout)
    assert report["source"] == "attribute:split"
    assert len(report["leaks"]) == 1
    leak = report["leaks"][0]
    assert set(leak["splits"]) == {"train", "test"}
    assert len(leak["splits"]["test"]) == 1
    assert len(leak["splits"]["train"]) == 2
    assert "straddle" in leaky.stderr
    assert clean.returncode == 0
    assert json.loads(clean.stdout)["leaks"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("dedup", "run", "--semantic"), "register a model with an embedding output"),
        (("dedup", "run", "--radius", "99"), "--radius must be between 0 and 32"),
        (("dedup", "leaks"), "name exactly one split source"),
        (("dedup", "show", "999"), "no duplicate group 999"),
    ],
)
def test_errors_are_one_line_with_a_user_exit_code(
    catalog: str, args: tuple[str, ...], message: str
) -> None:
    proc = run_cli(*args, env=ENV, check=False)

    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stdout == ""
