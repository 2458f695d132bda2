"""The API under concurrent load: no request is reset, refused or failed.

Two causes of dropped requests, each with its own test, then the load itself:

- keep-alive: a server that closes idle connections when clients' pools also retire them
  (5 s) closes some at the moment a client sends its next request on them: that request is
  reset. The server must keep idle connections longer than clients do.
- the database pool: a request holds one pooled connection across several thread hops; when
  every thread waits for a connection while the requests that hold connections wait for a
  thread, all of them fail when the pool times out.

The load test runs 3 x 60 s of 50 clients against ``dataops serve --workers 2`` on PostgreSQL
(about 4 minutes with seeding; it is marked slow).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.api import bearer, create_user_token
from tests.support.load import run_load
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.postgres]


def _seed_images(folder: Path, n: int) -> None:
    """`n` small, distinct JPEGs ingested into the configured catalog."""
    from dataops.catalog.ingest import ingest
    from dataops.db import session_scope

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        grid = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        path = folder / f"img_{i:05d}.jpg"
        Image.fromarray(grid).resize((64, 64), Image.Resampling.NEAREST).save(path, quality=90)
        paths.append(str(path))
    ingest(paths, transaction=session_scope)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`dataops serve` on loopback, its output kept in a file for failure messages."""

    def __init__(self, workers: int, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dataops", "serve", "--port", str(self.port),
             "--workers", str(workers), "--log-level", "warning"],
            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
            stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip

        def answering() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.output()
            try:
                return httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(answering, "dataops serve to answer /healthz", timeout=90, interval=0.2)
        except AssertionError:
            self.stop()
            raise

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._out.close()


@pytest.fixture
def serve(pg_catalog: str, tmp_path: Path) -> Iterator[type[Server]]:
    servers: list[Server] = []

    def start(workers: int = 1) -> Server:
        server = Server(workers, tmp_path / f"serve-{len(servers)}.log")
        servers.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in servers:
        server.stop()


@pytest.mark.slow
def test_idle_connection_outlives_client_pool_expiry(serve) -> None:  # type: ignore[no-untyped-def]
    """A connection idle for longer than httpx's 5 s pool expiry is still open on the server,
    so a client reusing it near that moment never races the server's close."""
    token = create_user_token("scientist")
    server = serve(workers=1)
    limits = httpx.Limits(max_connections=1, keepalive_expiry=30)
    transport = httpx.HTTPTransport(retries=0, limits=limits)
    with httpx.Client(base_url=server.url, transport=transport, timeout=10) as client:
        first = client.get("/v1/images?limit=5", headers=bearer(token))
        port = first.extensions["network_stream"].get_extra_info("client_addr")[1]
        time.sleep(6.5)
        second = client.get("/v1/images?limit=5", headers=bearer(token))
        again = second.extensions["network_stream"].get_extra_info("client_addr")[1]
    assert first.status_code == second.status_code == 200
    assert again == port, "the server closed an idle connection after less than 6.5 s"


def test_more_requests_than_threads_and_connections(
    pg_catalog: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """120 requests at once in one process (40 threads, 15 pooled connections) all answer 200:
    none waits for a connection in a thread while the holders of connections wait for one."""
    from sqlalchemy import event

    from dataops import db
    from dataops.api.app import create_app

    monkeypatch.setattr(db, "POOL_TIMEOUT", 5)
    db.dispose_engines()
    _seed_images(tmp_path / "imgs", 60)
    token = create_user_token("scientist")
    engine = db.get_engine()
    out = Counter[str]()
    checked_out = [0, 0]

    lock = threading.Lock()

    def on_checkout(*_: object) -> None:
        with lock:
            checked_out[0] += 1
            checked_out[1] = max(checked_out)

    def on_checkin(*_: object) -> None:
        with lock:
            checked_out[0] -= 1

    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", on_checkin)

    async def main() -> None:
        transport = httpx.ASGITransport(app=create_app())
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", timeout=120
        ) as client:

            async def one() -> None:
                response = await client.get("/v1/images?limit=50", headers=bearer(token))
                out[str(response.status_code)] += 1

            await asyncio.gather(*[one() for _ in range(120)])

    started = time.monotonic()
    asyncio.run(main())
    assert out == Counter({"200": 120}), f"{out} after {time.monotonic() - started:.0f} s"
    assert checked_out[1] <= db.REQUEST_SESSIONS


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fifty_clients_for_three_minutes_without_errors(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """3 x 60 s, 50 concurrent clients, GET /v1/images?limit=50 over 1,000 images, two server
    processes, no client retries: every request answers 200 (no reset, no 5xx)."""
    _seed_images(tmp_path / "imgs", 1000)
    token = create_user_token("scientist")
    server = serve(workers=2)
    windows = []
    for _ in range(3):
        result = run_load(server.url, token, ["/v1/images?limit=50"], clients=50, seconds=60)
        windows.append(result)
        summary = (
            f"{len(result.latencies)} answers, p50 {result.percentile(0.5) * 1000:.0f} ms, "
            f"p95 {result.percentile(0.95) * 1000:.0f} ms, errors {dict(result.errors)}"
        )
        print(summary)
        assert result.error_count == 0, f"{summary}\nserver output:\n{server.output()}"
        assert result.latencies, summary
