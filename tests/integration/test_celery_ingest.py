"""Ingest as a job on a real Celery worker, real Redis broker and real PostgreSQL catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import run_json
from tests.support.services import CeleryWorker, service_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.celery]


def test_ingest_runs_on_a_worker(
    pg_catalog: str, redis_url: str, image_dir: Path, isolated_env: Path
) -> None:
    env = service_env(
        DATAOPS_DATABASE_URL=pg_catalog,
        DATAOPS_BROKER_URL=redis_url,
        DATAOPS_DATA_DIR=str(isolated_env),
    )
    with CeleryWorker(env, queues="ingest"):
        out = run_json("ingest", str(image_dir), env=env)
        job = run_json("jobs", "show", out["job_id"], env=env)
        assert job["status"] == "succeeded" and job["attempts"] == 1
        assert out["new"] == len(list(image_dir.iterdir())) and out["quarantined"] == 1
        again = run_json("ingest", str(image_dir), env=env)
        assert again["skipped"] == again["files"]
    log = (isolated_env / "celery-w1.log").read_text()
    assert "dataops.ingest.run" in log
