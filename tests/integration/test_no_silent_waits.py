"""The CLI never waits on a queue nobody consumes, and exits as the README says: 2 for bad
input, 3 for a service that is down (database, broker, Label Studio, no worker on the queue),
also when the failure happened on a worker. Real PostgreSQL, Redis and Celery workers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.cli import run_cli, run_json
from tests.support.services import CeleryWorker, service_env

GUIDELINES = Path(__file__).resolve().parents[2] / "guidelines"

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def services(pg_catalog: str, redis_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return service_env(
        DATAOPS_DATABASE_URL=pg_catalog,
        DATAOPS_BROKER_URL=redis_url,
        DATAOPS_DATA_DIR=str(data_dir),
        DATAOPS_INGEST__WORKERS="1",
        **extra,
    )


def no_worker(proc: object, queue: str) -> None:
    stderr = proc.stderr  # type: ignore[attr-defined]
    assert proc.returncode == 3, stderr  # type: ignore[attr-defined]
    assert f"no running worker consumes the `{queue}` queue" in stderr
    assert f"`dataops worker -Q {queue}`" in stderr
    assert "Traceback" not in stderr


def test_no_worker_is_reported_within_seconds(
    pg_catalog: str, redis_url: str, isolated_env: Path
) -> None:
    env = services(pg_catalog, redis_url, isolated_env)

    started = time.monotonic()
    proc = run_cli("dedup", "run", env=env, check=False, timeout=60)
    elapsed = time.monotonic() - started

    no_worker(proc, "dedup")
    assert elapsed < 15  # interpreter start-up included; the question itself takes ~2 s
    job_id = proc.stderr.split("dataops jobs show ")[1].split("`")[0]
    assert run_json("jobs", "show", job_id, env=env)["status"] == "pending"

    queued = run_cli("dedup", "run", "--no-wait", "--json", env=env, check=False, timeout=60)
    assert queued.returncode == 0, queued.stderr
    assert "warning: no running worker consumes the `dedup` queue" in queued.stderr


def test_broker_and_database_down_exit_3(tmp_path: Path) -> None:
    run_cli("init")
    broker = run_cli(
        "dedup", "run", env={"DATAOPS_BROKER_URL": "redis://127.0.0.1:1/0"}, check=False
    )
    assert broker.returncode == 3 and "cannot reach the broker" in broker.stderr
    database = run_cli(
        "images",
        "list",
        env={"DATAOPS_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/dataops"},
        check=False,
    )
    assert database.returncode == 3 and "cannot use the catalog database" in database.stderr
    bad_input = run_cli("ingest", str(tmp_path / "missing"), check=False)
    assert bad_input.returncode == 2


@pytest.mark.slow
@pytest.mark.celery
def test_workers_on_other_queues_then_the_right_one_then_label_studio_down(
    pg_catalog: str, redis_url: str, isolated_env: Path, image_dir: Path
) -> None:
    env = services(
        pg_catalog,
        redis_url,
        isolated_env,
        DATAOPS_LABELSTUDIO_URL="http://127.0.0.1:9",
        DATAOPS_LABELSTUDIO_TOKEN="not-used",
    )
    with CeleryWorker(env, queues="ingest,sync", name="io"):
        assert run_json("ingest", str(image_dir), env=env)["new"] > 0
        proc = run_cli("dedup", "run", env=env, check=False, timeout=60)
        no_worker(proc, "dedup")
        assert "ingest (1)" in proc.stderr and "sync (1)" in proc.stderr

        with CeleryWorker(env, queues="dedup", name="cpu"):
            done = run_json("dedup", "run", env=env)
            assert done["images"] > 0
            run_json("vendors", "create", "acme", env=env)
            run_json("guidelines", "publish", str(GUIDELINES / "clothing" / "v1.md"), env=env)
            run_json("queues", "create", "acme-clothing", "--vendor", "acme",
                     "--guideline", "clothing", env=env)  # fmt: skip
            batch = run_json("select", "--strategy", "random", "--size", "3",
                             "--queue", "acme-clothing", env=env)  # fmt: skip

        # Label Studio is down: the push fails on the worker and the CLI exits 3, as it
        # does when the same push runs in-process.
        push = run_cli("batches", "push", str(batch["id"]), env=env, check=False, timeout=120)
        assert push.returncode == 3, push.stderr
        assert "Label Studio at http://127.0.0.1:9 is unavailable" in push.stderr
        assert "Traceback" not in push.stderr


def test_a_worker_on_a_misspelt_queue_is_refused() -> None:
    proc = run_cli(
        "worker", "-Q", "ingest,dedupe", env={"DATAOPS_BROKER_URL": "redis://x"}, check=False
    )

    assert proc.returncode == 2
    assert "unknown queue 'dedupe'" in proc.stderr and "dedup,ingest" in proc.stderr


@pytest.mark.slow
def test_label_studio_down_exits_3_in_process(image_dir: Path) -> None:
    env = {
        "DATAOPS_LABELSTUDIO_URL": "http://127.0.0.1:9",
        "DATAOPS_LABELSTUDIO_TOKEN": "not-used",
        "DATAOPS_INGEST__WORKERS": "1",
    }
    run_json("ingest", str(image_dir), env=env)
    run_json("vendors", "create", "acme", env=env)
    run_json("guidelines", "publish", str(GUIDELINES / "clothing" / "v1.md"), env=env)
    run_json("queues", "create", "q", "--vendor", "acme", "--guideline", "clothing", env=env)
    batch = run_json("select", "--strategy", "random", "--size", "2", "--queue", "q", env=env)

    push = run_cli("batches", "push", str(batch["id"]), env=env, check=False)

    assert push.returncode == 3, push.stderr
    assert "Label Studio at http://127.0.0.1:9 is unavailable" in push.stderr
    assert "Traceback" not in push.stderr
