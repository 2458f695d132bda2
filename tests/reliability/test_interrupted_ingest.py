"""An ingest killed mid-run leaves a consistent catalog; the re-run finishes the rest exactly once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dataops.catalog.models import Image, ImageLocation
from dataops.db import session_scope
from tests.support.cli import run_json

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_killed_ingest_resumes(
    catalog: str, corpus: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    sources = sorted((corpus / "clothing-dataset").glob("*.jpg"))[:400]
    for src in sources:
        shutil.copy(src, folder / src.name)
    env = dict(os.environ, DATAOPS_INGEST__BATCH_SIZE="20", DATAOPS_INGEST__WORKERS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataops", "ingest", str(folder)],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    count = 0
    while time.monotonic() < deadline and count < 60:
        time.sleep(0.2)
        with session_scope() as s:
            count = s.scalar(select(func.count()).select_from(Image)) or 0
    os.killpg(proc.pid, sig)
    proc.wait(timeout=60)
    with session_scope() as s:
        partial = s.scalar(select(func.count()).select_from(Image)) or 0
        locations = s.scalar(select(func.count()).select_from(ImageLocation)) or 0
    assert 0 < partial < len(sources), "the kill should land mid-run"
    assert partial % 20 == 0 and locations == partial, "only whole batches are visible"
    out = run_json("ingest", str(folder), env=env)
    assert out["new"] + out["skipped"] == len(sources)
    assert out["skipped"] == partial
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Image)) == len(sources)
        assert s.scalar(select(func.count(func.distinct(Image.sha256)))) == len(sources)
