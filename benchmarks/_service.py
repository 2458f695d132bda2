"""Shared set-up for service benchmarks: synthetic images, a loopback API server, clients."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def make_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """Small, distinct JPEGs: a random 8x8 colour grid upscaled, so every file hashes differently."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        grid = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        path = folder / f"img_{i:06d}.jpg"
        Image.fromarray(grid).resize((64, 64), Image.Resampling.NEAREST).save(path, quality=90)
        paths.append(path)
    return paths


def shard_lists(files: list[Path], shards: int, folder: Path) -> list[Path]:
    """Split files into list files, one ingest job each, so several workers share the work."""
    lists = []
    for k in range(shards):
        listing = folder / f"shard_{k:02d}.txt"
        listing.write_text("\n".join(str(p) for p in files[k::shards]) + "\n")
        lists.append(listing)
    return lists


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(env: dict[str, str], port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    """`dataops serve` on loopback; returns once /healthz answers (bounded wait)."""
    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "dataops", "serve", "--port", str(port), "--workers", str(workers),
         "--log-level", "warning"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("the API did not start within 60 s")


async def _client(client, paths, token, stop, deadline, budget, out):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"}
    i = 0
    while not stop() and time.monotonic() < deadline and budget[0] > 0:
        budget[0] -= 1
        path = paths[i % len(paths)]
        start = time.perf_counter()
        response = await client.get(path, headers=headers)
        out.setdefault(path.split("?")[0], []).append(time.perf_counter() - start)
        response.raise_for_status()
        i += 1


def hammer(
    url: str,
    token: str,
    paths: list[str],
    *,
    clients: int,
    max_requests: int,
    max_seconds: float,
    stop: Callable[[], bool] = lambda: False,
) -> tuple[dict[str, list[float]], float]:
    """Concurrent GETs, bounded in count and time; latencies per path and the wall time."""
    import httpx

    async def run() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        budget = [max_requests]
        deadline = time.monotonic() + max_seconds
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            await asyncio.gather(
                *[
                    _client(client, paths, token, stop, deadline, budget, out)
                    for _ in range(clients)
                ]
            )
        return out

    start = time.perf_counter()
    result = asyncio.run(run())
    return result, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))] if ordered else float("nan")
