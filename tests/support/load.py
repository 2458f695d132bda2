"""Concurrent HTTP clients that count every failed request instead of stopping at the first.

Used by the load reliability test and ``benchmarks/api.py``. No retries: a reset, a
protocol error or a non-2xx answer is counted once, by kind, and the client goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    wall: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[int(q * (len(ordered) - 1))] if ordered else float("nan")


def run_load(
    url: str,
    token: str,
    paths: list[str],
    *,
    clients: int,
    seconds: float,
    max_requests: int | None = None,
) -> LoadResult:
    """`clients` concurrent connections issue GETs round-robin over `paths` for `seconds`."""
    import httpx

    result = LoadResult()
    budget = [max_requests if max_requests is not None else 1 << 62]
    headers = {"Authorization": f"Bearer {token}"}

    async def one_client(client: httpx.AsyncClient, deadline: float) -> None:
        i = 0
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            path = paths[i % len(paths)]
            i += 1
            start = time.perf_counter()
            try:
                response = await client.get(path, headers=headers)
            except httpx.HTTPError as exc:
                result.errors[f"{type(exc).__name__}: {exc}"[:160]] += 1
                continue
            if response.status_code != 200:
                result.errors[f"HTTP {response.status_code}"] += 1
                continue
            result.latencies.append(time.perf_counter() - start)

    async def main() -> None:
        limits = httpx.Limits(max_connections=clients)
        transport = httpx.AsyncHTTPTransport(retries=0, limits=limits)
        async with httpx.AsyncClient(base_url=url, timeout=60, transport=transport) as client:
            deadline = time.monotonic() + seconds
            await asyncio.gather(*[one_client(client, deadline) for _ in range(clients)])

    start = time.perf_counter()
    asyncio.run(main())
    result.wall = time.perf_counter() - start
    return result
