"""Real backing services for tests: PostgreSQL databases, Redis keyspaces, Celery workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
PG_HOST = os.environ.get("DATAOPS_TEST_PG_HOST", "127.0.0.1")
PG_ADMIN_URL = f"postgresql://postgres@{PG_HOST}:5432/postgres"
REDIS_HOST = os.environ.get("DATAOPS_TEST_REDIS_HOST", "127.0.0.1")


def _admin_conn():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True)


def create_database(name: str, template: str | None = None) -> str:
    """An empty database, or a copy of ``template`` (which must have no open sessions)."""
    copy = f' TEMPLATE "{template}"' if template else ""
    with _admin_conn() as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copy}')
    return f"postgresql+psycopg://postgres@{PG_HOST}:5432/{name}"


def disconnect_database(name: str) -> None:
    with _admin_conn() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )


def drop_database(name: str) -> None:
    disconnect_database(name)
    with _admin_conn() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def recreate_from_template(url: str, template: str) -> None:
    """Replace the (unused) database behind ``url`` with a copy of ``template``."""
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    assert name
    with _admin_conn() as conn:
        conn.execute(f'DROP DATABASE "{name}"')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


@contextmanager
def redis_db() -> Iterator[str]:
    """A Redis database number that no other running test uses, flushed before and after."""
    import redis

    lock_client = redis.Redis(host=REDIS_HOST, port=6379, db=0)
    for number in range(1, 16):
        key = f"dataops-test-lock:{number}"
        if lock_client.set(key, os.getpid(), nx=True, ex=3600):
            break
    else:
        raise RuntimeError("no free Redis database for the test")
    url = f"redis://{REDIS_HOST}:6379/{number}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        lock_client.delete(key)


class CeleryWorker:
    """A real `celery worker` subprocess on the given queues, stopped with the test."""

    def __init__(
        self,
        env: dict[str, str],
        queues: str,
        concurrency: int = 1,
        name: str = "w1",
        extra: tuple[str, ...] = (),
    ) -> None:
        self.env = env
        self.extra = extra
        self.queues = queues
        self.concurrency = concurrency
        self.name = name
        self.log = Path(env.get("DATAOPS_DATA_DIR", "/tmp")) / f"celery-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> CeleryWorker:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "celery", "-A", "workers.app", "worker",
            "-Q", self.queues, "-c", str(self.concurrency), "-n", f"{self.name}@%h",
            "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
            *self.extra,
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = self.proc

        def ready_or_exited() -> bool:
            return b"ready." in self.log.read_bytes() or proc.poll() is not None

        try:
            wait_until(ready_or_exited, "the celery worker to start", timeout=timeout, interval=0.2)
            if proc.poll() is None:
                return self
        except AssertionError:
            pass
        tail = self.log.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"celery worker did not start:\n{tail}")

    def child_pids(self) -> list[int]:
        """Pool processes (the ones that run tasks)."""
        assert self.proc is not None
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self) -> CeleryWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def service_env(**overrides: str) -> dict[str, str]:
    """The current DATAOPS_* environment plus overrides, for subprocesses."""
    env = dict(os.environ)
    env.update(overrides)
    env["PYTHONPATH"] = str(REPO)
    return env
