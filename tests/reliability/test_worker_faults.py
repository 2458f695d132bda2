"""Workers die and brokers forget: no job silently disappears, nothing is duplicated."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from dataops.catalog.models import Image
from dataops.config import reset_settings
from dataops.db import session_scope
from dataops.jobs import dispatch
from dataops.jobs import service as jobs_service
from dataops.jobs.recovery import recover_stale
from tests.support.services import CeleryWorker, service_env
from tests.support.wait import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.celery, pytest.mark.slow]


N_MAIN_KILL = 1000


def _copy(corpus: Path, dest: Path, n: int) -> Path:
    dest.mkdir()
    for src in sorted((corpus / "clothing-dataset").glob("*.jpg"))[:n]:
        shutil.copy(src, dest / src.name)
    return dest


def _wait(job_id: str, predicate, timeout: float = 180, poll: float = 0.2):  # type: ignore[no-untyped-def]
    def reached():  # type: ignore[no-untyped-def]
        with session_scope() as s:
            job = jobs_service.get_job(s, job_id)
            return job if predicate(job) else None

    return wait_until(
        reached, f"job {job_id} to reach the expected state", timeout=timeout, interval=poll
    )


def _use_broker(monkeypatch: pytest.MonkeyPatch, broker: str) -> None:
    monkeypatch.setenv("DATAOPS_BROKER_URL", broker)
    reset_settings()


def test_worker_killed_mid_ingest_is_redelivered(
    pg_catalog: str,
    redis_url: str,
    corpus: Path,
    tmp_path: Path,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = _copy(corpus, tmp_path / "imgs", 600)
    monkeypatch.setenv("DATAOPS_INGEST__BATCH_SIZE", "20")
    _use_broker(monkeypatch, redis_url)
    env = service_env()
    with CeleryWorker(env, queues="ingest") as worker:
        job = dispatch.submit("ingest", {"paths": [str(folder)]}, actor="test")
        _wait(job.id, lambda j: j.progress_done >= 60 and j.status == "running")
        for pid in worker.child_pids():
            os.kill(pid, signal.SIGKILL)
        done = _wait(job.id, lambda j: j.status in ("succeeded", "failed"))
    assert done.status == "succeeded", done.error
    assert done.attempts >= 2, "the task must have been redelivered after the kill"
    assert done.result is not None
    # The killed attempt's images count as new: results add up across attempts.
    assert (done.result["new"], done.result["skipped"]) == (600, 0)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Image)) == 600
        assert s.scalar(select(func.count(func.distinct(Image.sha256)))) == 600


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] == b"Z"
    except FileNotFoundError:
        return True


def test_main_worker_process_killed_mid_ingest_is_picked_up_by_a_new_worker(
    pg_catalog: str,
    redis_url: str,
    corpus: Path,
    tmp_path: Path,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGKILL of the Celery main process (its pool dies with it): the message stays unacked
    until the broker's visibility timeout (4,000 s), but the job's lease stops being renewed,
    so a new worker's recovery sends the job again within seconds and it completes once."""
    # Every clothing photo, one decode process and a commit every 2 images: a few seconds of
    # ingest even on a quiet machine, so the kill lands mid-job rather than after it.
    folder = _copy(corpus, tmp_path / "imgs", N_MAIN_KILL)
    monkeypatch.setenv("DATAOPS_INGEST__BATCH_SIZE", "2")
    monkeypatch.setenv("DATAOPS_INGEST__WORKERS", "1")
    monkeypatch.setenv("DATAOPS_WORKER__LEASE", "3")
    monkeypatch.setenv("DATAOPS_WORKER__RECOVER_EVERY", "1")
    _use_broker(monkeypatch, redis_url)
    env = service_env()
    first = CeleryWorker(env, queues="ingest", name="w1").start()
    try:
        job = dispatch.submit("ingest", {"paths": [str(folder)]}, actor="test")
        _wait(job.id, lambda j: j.progress_done >= 20 and j.status == "running", poll=0.02)
        pool = first.child_pids()
        assert first.proc is not None and pool
        os.kill(first.proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        first.proc.wait(timeout=10)
        wait_until(
            lambda: all(_gone(pid) for pid in pool),
            "the pool to end with its main process",
            timeout=30,
            interval=0.1,
        )
    finally:
        first.stop()
    with session_scope() as s:
        assert jobs_service.get_job(s, job.id).status == "running"  # nobody is on it
    beat = ("--beat", "--schedule", str(isolated_env / "beat-schedule"))
    with CeleryWorker(env, queues="ingest", name="w2", extra=beat):
        _wait(job.id, lambda j: j.attempts >= 2)
        resent_after = time.monotonic() - killed_at
        print(f"main process killed: new attempt {resent_after:.1f} s later")
        done = _wait(job.id, lambda j: j.status in ("succeeded", "failed"))
    assert done.status == "succeeded", done.error
    assert resent_after < 60, f"the job waited {resent_after:.0f} s for a new attempt"
    assert done.attempts == 2
    assert done.result is not None
    n = N_MAIN_KILL
    assert (done.result["files"], done.result["new"], done.result["skipped"]) == (n, n, 0)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Image)) == n


def test_jobs_lost_with_redis_queues_are_recovered(
    pg_catalog: str,
    redis_url: str,
    image_dir: Path,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _use_broker(monkeypatch, redis_url)
    job = dispatch.submit("ingest", {"paths": [str(image_dir)]}, actor="test")
    redis.Redis.from_url(redis_url).flushdb()  # Redis restarted without persistence: queue gone
    with session_scope() as s:
        assert jobs_service.get_job(s, job.id).status == "pending"  # visible, not silently lost
    with CeleryWorker(service_env(), queues="ingest"):  # ready: it consumes `ingest` now
        assert redis.Redis.from_url(redis_url).llen("ingest") == 0  # nothing left to deliver
        with session_scope() as s:
            assert jobs_service.get_job(s, job.id).status == "pending"
        assert recover_stale(older_than=0) == [job.id]
        done = _wait(job.id, lambda j: j.status in ("succeeded", "failed"))
    assert done.status == "succeeded", done.error
    assert done.result is not None and done.result["new"] == len(list(image_dir.iterdir()))


def test_worker_killed_mid_scoring_is_redelivered(
    pg_catalog: str,
    redis_url: str,
    corpus: Path,
    tmp_path: Path,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataops.catalog.ingest import ingest
    from dataops.scoring import register as scoring
    from dataops.scoring.models import Prediction
    from tests.support.brightness_model import CLASSES, export

    folder = _copy(corpus, tmp_path / "imgs", 600)
    ingest([str(folder)], transaction=session_scope)
    with session_scope() as s:
        scoring.register_model(
            s, export(tmp_path / "m.pt"), name="bright", classes=list(CLASSES), actor="test"
        )
    _use_broker(monkeypatch, redis_url)
    with CeleryWorker(service_env(), queues="score") as worker:
        job = dispatch.submit("score", {"model": "bright", "batch_size": 5}, actor="test")
        _wait(job.id, lambda j: j.progress_done >= 100 and j.status == "running")
        for pid in worker.child_pids():
            os.kill(pid, signal.SIGKILL)
        done = _wait(job.id, lambda j: j.status in ("succeeded", "failed"))
    assert done.status == "succeeded", done.error
    assert done.attempts >= 2, "the task must have been redelivered after the kill"
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Prediction)) == 600
        assert s.scalar(select(func.count(func.distinct(Prediction.image_id)))) == 600


def test_the_beat_sweep_sends_a_forgotten_job_again(
    pg_catalog: str,
    redis_url: str,
    image_dir: Path,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker started with job queues only still runs beat's recovery sweep: every worker
    also takes the `maintenance` queue that beat sends it to."""
    monkeypatch.setenv("DATAOPS_WORKER__STALE_AFTER", "1")
    monkeypatch.setenv("DATAOPS_WORKER__RECOVER_EVERY", "1")
    _use_broker(monkeypatch, redis_url)
    beat = ("--beat", "--schedule", str(isolated_env / "beat-schedule"))
    with CeleryWorker(service_env(), queues="ingest", extra=beat):
        with session_scope() as s:  # recorded, never sent: created after the worker started
            job_id = jobs_service.create_job(s, "ingest", {"paths": [str(image_dir)]}, "test").id
        done = _wait(job_id, lambda j: j.status in ("succeeded", "failed"), timeout=60)
    assert done.status == "succeeded", done.error
    assert done.attempts == 1
