"""Dedup survives damage and crashes: a deleted, corrupt, torn or stale index file, a catalog
state that disagrees with it, and a run killed mid-write all end, after one more run, in the
same groups as an uninterrupted run and a ``--full`` recompute."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import create_engine, delete, select, text, update

from dataops.catalog.ingest import ingest
from dataops.catalog.models import Image
from dataops.db import session_scope
from dataops.dedup.index import sidecar_path
from dataops.dedup.models import IndexState
from dataops.dedup.run import run_dedup
from dataops.dedup.schemas import DedupRunRequest, DedupSummary
from dataops.dedup.state import index_path
from dataops.dedup.transforms import TRANSFORMS
from tests.support.cli import run_cli, run_json
from tests.support.corpus import CORPUS
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Batches:
    """Three ingests: photos with a small copy, their re-encoded copies, more of each."""

    first: Path
    second: Path
    third: Path
    expected: set[frozenset[str]]


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> Batches:
    root = tmp_path_factory.mktemp("dedup-crash")
    folders = [root / name for name in ("first", "second", "third")]
    for folder in folders:
        folder.mkdir()
    kodak = sorted((CORPUS / "kodak-photocd").glob("*.png"))
    for k, path in enumerate(kodak[:6]):
        target = folders[0] if k < 4 else folders[2]
        shutil.copy(path, target / path.name)
        with PILImage.open(path) as img:
            rgb = img.convert("RGB")
        rng = np.random.default_rng(k)
        TRANSFORMS["resize"](rgb, rng).save(target / f"{path.stem}_resize.png")
        TRANSFORMS["jpeg"](rgb, rng).save(folders[1 if k < 4 else 2] / f"{path.stem}_jpeg.png")
    for path in kodak[14:17]:
        shutil.copy(path, folders[1] / path.name)
    # Copies only the view and geometric stages find, so a killed run dies with their work.
    with PILImage.open(kodak[0]) as img:
        rgb = img.convert("RGB")
    boxed = PILImage.new("RGB", (rgb.width, rgb.height + 2 * (rgb.height // 10)), (0, 0, 0))
    boxed.paste(rgb, (0, rgb.height // 10))
    boxed.save(folders[2] / f"{kodak[0].stem}_letterbox.png")
    cut = (rgb.width // 10, rgb.height // 10, rgb.width, rgb.height)
    rgb.crop(cut).save(folders[2] / f"{kodak[0].stem}_crop.png")
    # The uninterrupted reference: the same three ingests and runs in a catalog of its own.
    env = {
        "DATAOPS_DATA_DIR": str(root / "reference"),
        "DATAOPS_DATABASE_URL": f"sqlite:///{root / 'reference' / 'catalog.db'}",
        "DATAOPS_BROKER_URL": "",
        "DATAOPS_INGEST__WORKERS": "1",
    }
    run_cli("init", env=env)
    for folder in folders:
        run_json("ingest", str(folder), env=env)
        run_json("dedup", "run", env=env)
    groups = run_json("dedup", "groups", env=env)["groups"]
    expected = {frozenset(Path(m["uri"]).name for m in g["members"]) for g in groups}
    assert len(expected) == 6
    staged = {f"{kodak[0].stem}_letterbox.png", f"{kodak[0].stem}_crop.png", kodak[0].name}
    assert any(staged <= g for g in expected), expected
    return Batches(*folders, expected=expected)


@pytest.fixture(autouse=True)
def _one_process(catalog: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataops.config import reset_settings

    monkeypatch.setenv("DATAOPS_INGEST__WORKERS", "1")
    reset_settings()


def _ingest(folder: Path) -> None:
    ingest([str(folder)], transaction=session_scope)


def _run(**options: object) -> DedupSummary:
    with session_scope() as s:
        return run_dedup(s, DedupRunRequest.model_validate(options))


def _groups() -> set[frozenset[str]]:
    members: dict[int, set[str]] = defaultdict(set)
    with session_scope() as s:
        for uri, group in s.execute(select(Image.uri, Image.dup_group_id)):
            if group is not None:
                members[group].add(Path(uri).name)
    return {frozenset(m) for m in members.values()}


def _recovers(batches: Batches, *, full: bool) -> None:
    """The next run rebuilds, ends with the reference groups, and a --full run agrees."""
    summary = _run()
    assert summary.rebuilt_index
    assert summary.rebuild_reason
    assert summary.full is full
    assert summary.new_images == (summary.images if full else len(list(batches.third.iterdir())))
    assert _groups() == batches.expected
    recompute = _run(full=True)
    assert not recompute.changed
    assert _groups() == batches.expected
    healthy = _run()
    assert not healthy.rebuilt_index
    assert not healthy.changed


def _save(path: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in (path, sidecar_path(path))}


DAMAGE = ["deleted", "corrupt", "old_sidecar", "stale_file", "state_changed", "state_dropped"]


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_index_or_state_is_rebuilt(batches: Batches, damage: str) -> None:
    index = index_path()
    _ingest(batches.first)
    _run()
    older = _save(index)
    _ingest(batches.second)
    _run()
    _ingest(batches.third)

    if damage == "deleted":
        index.unlink()
        sidecar_path(index).unlink()
    elif damage == "corrupt":
        index.write_bytes(b"not an index")
    elif damage == "old_sidecar":
        # A write torn between the two files: new contents, the previous sidecar.
        sidecar_path(index).write_bytes(older[sidecar_path(index)])
    elif damage == "stale_file":
        for path, data in older.items():
            path.write_bytes(data)
    elif damage == "state_changed":
        with session_scope() as s:
            s.execute(update(IndexState).values(checksum="0" * 64))
    else:
        with session_scope() as s:
            s.execute(delete(IndexState))

    _recovers(batches, full=damage in ("state_changed", "state_dropped"))


def _start_run() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dataops", "dedup", "run", "--json"],
        cwd=REPO,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_for(condition: Callable[[], object], proc: subprocess.Popen[bytes], what: str) -> None:
    def reached() -> bool:
        assert proc.poll() is None, f"the run ended before {what}"
        return bool(condition())

    wait_until(reached, what, timeout=120)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def test_run_killed_between_index_and_sidecar_recovers(batches: Batches) -> None:
    """The sidecar's temporary file is a FIFO nobody reads: the run blocks right after
    replacing the index file, with the sidecar still describing the previous contents."""
    index = index_path()
    _ingest(batches.first)
    _run()
    _ingest(batches.second)
    _run()
    _ingest(batches.third)
    before = index.stat().st_ino
    sidecar = sidecar_path(index)
    fifo = sidecar.with_name(sidecar.name + ".tmp")
    os.mkfifo(fifo)
    try:
        proc = _start_run()
        _wait_for(lambda: index.stat().st_ino != before, proc, "the index file write")
        _kill(proc)
    finally:
        fifo.unlink()

    _recovers(batches, full=False)


def test_run_killed_after_the_index_file_before_commit_recovers(
    batches: Batches, catalog: str
) -> None:
    """A row lock on the index state holds the run after the complete file is written."""
    if catalog.startswith("sqlite"):
        pytest.skip("holding one row while the run writes needs PostgreSQL row locks")
    index = index_path()
    _ingest(batches.first)
    _run()
    _ingest(batches.second)
    _run()
    _ingest(batches.third)
    written = sidecar_path(index).read_text()
    engine = create_engine(catalog)
    with engine.connect() as holder, engine.connect() as watcher:
        holder.execute(text("SELECT * FROM dedup_index_state FOR UPDATE"))
        proc = _start_run()

        def blocked_after_write() -> bool:
            waiting = watcher.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query ILIKE 'UPDATE dedup_index_state%'"
                )
            ).all()
            watcher.commit()
            return bool(waiting) and sidecar_path(index).read_text() != written

        _wait_for(blocked_after_write, proc, "the state update")
        _kill(proc)
        watcher.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        watcher.commit()
        holder.rollback()
    engine.dispose()
    assert sidecar_path(index).read_text() != written, "the file is ahead of the catalog"

    _recovers(batches, full=False)
