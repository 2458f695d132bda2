"""Sharded dedup: the query split across processes gives the groups of one in-process pass.

The end-to-end test runs the job on real Celery workers (PostgreSQL, Redis, two worker
processes) with the shard threshold lowered; the others drive the shard protocol (claims,
results, stale claims, failed shards) with worker processes started by the test itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from dataops.catalog.ingest import ingest
from dataops.catalog.models import Image
from dataops.db import session_scope
from dataops.dedup.run import run_dedup
from dataops.dedup.schemas import DedupRunRequest, DedupSummary
from dataops.dedup.shards import run_shard
from dataops.dedup.state import index_path
from dataops.dedup.transforms import TRANSFORMS
from dataops.events.models import Event
from tests.support.cli import run_cli, run_json
from tests.support.corpus import CORPUS
from tests.support.services import CeleryWorker, service_env

REPO = Path(__file__).resolve().parents[2]
SHARDING = {"DATAOPS_DEDUP__SHARD_MIN_IMAGES": "10", "DATAOPS_DEDUP__SHARD_SIZE": "6"}


@pytest.fixture(scope="module")
def photo_batches(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Eight photos with four edits each, then three edits more and four new photos."""
    root = tmp_path_factory.mktemp("sharded")
    first, second = root / "first", root / "second"
    first.mkdir()
    second.mkdir()
    kodak = sorted((CORPUS / "kodak-photocd").glob("*.png"))
    for k, path in enumerate(kodak[:8]):
        shutil.copy(path, first / path.name)
        with PILImage.open(path) as img:
            rgb = img.convert("RGB")
        rng = np.random.default_rng(k)
        for edit in ("resize", "jpeg", "text", "hflip"):
            TRANSFORMS[edit](rgb, rng).save(first / f"{path.stem}_{edit}.png")
        if k < 3:
            TRANSFORMS["brightness"](rgb, rng).save(second / f"{path.stem}_brightness.png")
    for path in kodak[8:12]:
        shutil.copy(path, second / path.name)
    return first, second


def _groups() -> set[frozenset[str]]:
    members: dict[int, set[str]] = defaultdict(set)
    with session_scope() as s:
        for uri, group in s.execute(select(Image.uri, Image.dup_group_id)):
            if group is not None:
                members[group].add(Path(uri).name)
    return {frozenset(m) for m in members.values()}


def _listed(env: dict[str, str]) -> set[frozenset[str]]:
    groups = run_json("dedup", "groups", env=env)["groups"]
    return {frozenset(Path(m["uri"]).name for m in g["members"]) for g in groups}


def _in_process_reference(root: Path, batches: tuple[Path, Path]) -> list[set[frozenset[str]]]:
    """Groups after each batch when every shard runs in one process (no broker)."""
    env = {
        "DATAOPS_DATA_DIR": str(root),
        "DATAOPS_DATABASE_URL": f"sqlite:///{root / 'catalog.db'}",
        "DATAOPS_BROKER_URL": "",
        "DATAOPS_INGEST__WORKERS": "1",
        **SHARDING,
    }
    run_cli("init", env=env)
    out = []
    for folder in batches:
        run_json("ingest", str(folder), env=env)
        assert run_json("dedup", "run", env=env)["shards"] >= 2
        out.append(_listed(env))
    return out


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.celery
def test_sharded_run_on_two_workers_equals_the_in_process_run(
    pg_catalog: str,
    redis_url: str,
    isolated_env: Path,
    tmp_path: Path,
    photo_batches: tuple[Path, Path],
) -> None:
    expected = _in_process_reference(tmp_path / "reference", photo_batches)
    env = service_env(
        DATAOPS_DATABASE_URL=pg_catalog,
        DATAOPS_BROKER_URL=redis_url,
        DATAOPS_DATA_DIR=str(isolated_env),
        DATAOPS_INGEST__WORKERS="1",
        **SHARDING,
    )
    summaries = []
    with CeleryWorker(env, "dedup", name="w1"), CeleryWorker(env, "dedup", name="w2"):
        for k, folder in enumerate(photo_batches):
            ingest([str(folder)], transaction=session_scope)
            summaries.append(run_json("dedup", "run", env=env))
            assert _groups() == expected[k]
        again = run_json("dedup", "run", env=env)

    assert summaries[0]["shards"] == 7
    assert summaries[0]["new_images"] == 40
    assert summaries[1]["new_images"] == 7
    assert summaries[1]["shards"] == 2
    assert not again["changed"]
    assert again["shards"] == 0
    logs = "".join((isolated_env / f"celery-{w}.log").read_text() for w in ("w1", "w2"))
    assert "dataops.dedup.run" in logs
    assert "dataops.dedup.shard" in logs
    assert not (isolated_env / "dedup" / "runs").exists() or not any(
        (isolated_env / "dedup" / "runs").iterdir()
    ), "run folders are removed"


def _shard_process(run_id: str, shard: int) -> None:
    """A separate process computes one shard, as a worker would."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from dataops.dedup.shards import run_shard; "
            "sys.exit(0 if run_shard(sys.argv[1], int(sys.argv[2])) else 3)",
            run_id,
            str(shard),
        ],
        cwd=REPO,
        env=dict(os.environ),
        check=True,
    )


def _run_with(fan_out: Callable[[str, int], None]) -> DedupSummary:
    with session_scope() as s:
        return run_dedup(s, actor="test", run_id="run-1", fan_out=fan_out)


@pytest.fixture
def sharded(
    catalog: str, monkeypatch: pytest.MonkeyPatch, photo_batches: tuple[Path, Path]
) -> Path:
    from dataops.config import reset_settings

    for key, value in {**SHARDING, "DATAOPS_INGEST__WORKERS": "1"}.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    ingest([str(photo_batches[0])], transaction=session_scope)
    return photo_batches[0]


def _remote_shards() -> int:
    with session_scope() as s:
        event = s.scalars(
            select(Event).where(Event.action == "dedup.run").order_by(Event.id.desc())
        ).first()
    assert event is not None
    return int(event.details["shards_remote"])


def test_shards_claimed_by_other_processes_are_not_recomputed(
    sharded: Path, tmp_path: Path
) -> None:
    sent: list[tuple[str, int]] = []

    def fan_out(run_id: str, shards: int) -> None:
        sent.append((run_id, shards))
        for k in range(1, shards, 2):
            _shard_process(run_id, k)

    summary = _run_with(fan_out)

    assert sent == [("run-1", 7)]
    assert summary.shards == 7
    assert _remote_shards() == 3
    sharded_groups = _groups()
    assert len(sharded_groups) == 8
    assert all(len(g) == 5 for g in sharded_groups)
    assert not (index_path().parent / "runs" / "run-1").exists()
    with session_scope() as s:
        assert not run_dedup(s, DedupRunRequest(full=True)).changed, "the same as a full recompute"


def test_stale_claims_and_failed_shards_are_recomputed_by_the_job(
    sharded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataops.config import reset_settings

    monkeypatch.setenv("DATAOPS_DEDUP__SHARD_TIMEOUT", "0")
    reset_settings()

    def fan_out(run_id: str, shards: int) -> None:
        run_dir = index_path().parent / "runs" / run_id
        # A worker that died after claiming shard 0, and one whose shard 1 failed.
        (run_dir / "claim-0").write_text("gone-host:1")
        (run_dir / "claim-1").write_text("other-host:2")
        (run_dir / "error-1.txt").write_text("MemoryError: ")
        os.utime(run_dir / "claim-0", (0, 0))

    summary = _run_with(fan_out)

    assert summary.shards == 7
    assert _remote_shards() == 0
    assert len(_groups()) == 8
    assert not run_shard("run-1", 0), "a finished run has no shards left"
