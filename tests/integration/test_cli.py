"""The console script as a user runs it: JSON shapes, one-line errors, exit codes, start-up time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_cli, run_json


def test_ingest_and_images_json_contract(image_dir: Path) -> None:
    out = run_json("ingest", str(image_dir))
    assert set(out) >= {"job_id", "files", "new", "skipped", "quarantined"}
    assert out["quarantined"] == 1
    again = run_json("ingest", str(image_dir))
    assert again["skipped"] == again["files"] and again["new"] == 0
    listed = run_json("images", "list", "--status", "quarantined")
    assert [set(i) for i in listed["images"]] == [
        {"id", "sha256", "uri", "status", "quarantine_reason"}
    ]
    shown = run_json("images", "show", listed["images"][0]["sha256"][:12])
    assert shown["status"] == "quarantined" and shown["locations"]
    jobs = run_json("jobs", "list")["jobs"]
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded"]


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["ingest", "/no/such/dir"], {}, "no such file or folder"),
        (["images", "list"], {"DATAOPS_DATABASE_URL": "nosuchdb://x"}, "not a usable database URL"),
        (
            ["images", "list"],
            {"DATAOPS_DATABASE_URL": "postgresql+psycopg://nobody:secret@127.0.0.1:1/x"},
            "cannot use the catalog database",
        ),
        (
            ["ingest", "/tmp"],
            {"DATAOPS_BROKER_URL": "redis://127.0.0.1:1/0"},
            "cannot reach the broker",
        ),
        (["images", "show", "999999"], {}, "no image"),
        (["jobs", "show", "nope"], {}, "no job"),
    ],
)
def test_bad_input_is_one_clear_line(args: list[str], env: dict[str, str], needle: str) -> None:
    if not env:
        run_cli("init")  # the error is about the input, not about a missing catalog
    proc = run_cli(*args, env=env, check=False)
    assert proc.returncode != 0
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "secret" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 3  # Rich may wrap the one line


def test_help_explains_commands() -> None:
    out = run_cli("--help").stdout
    for command in ("init", "ingest", "images", "jobs", "demo", "worker"):
        assert command in out
    assert "--source" in run_cli("ingest", "--help").stdout


def test_init_json() -> None:
    out = run_json("init")
    assert out["database"] == "sqlite" and out["revision"]


def test_demo_builds_its_own_images() -> None:
    out = json.loads(run_cli("demo", "--json").stdout)
    assert out["ingest"]["new"] > 300
    assert out["catalog"]["quarantined"] == 1
    assert out["quarantined"][0]["uri"].endswith("truncated.jpg")
