"""API throughput and latency under concurrent clients, and job time with 1 vs 2 workers.

    .venv/bin/python benchmarks/api.py [--clients 50] [--requests 3000] [--job-images 10000]

Part 1: a PostgreSQL catalog of `--catalog-images` synthetic images and one batch; `dataops
serve --workers 2` on loopback; `--clients` concurrent clients issue at most `--requests`
requests (or run for `--max-seconds`) against GET /v1/images?limit=50 and GET /v1/batches/{id}.
Failed requests (resets, protocol errors, non-200 answers; no retries) are counted, not fatal.
Part 2: `--job-images` images ingested as 8 list-file jobs on 1, then 2 Celery workers
(fresh database each time); wall time from submit to the last job finished.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._service import free_port, make_images, shard_lists, start_api  # noqa: E402
from tests.support.load import run_load  # noqa: E402
from tests.support.services import CeleryWorker, create_database, drop_database, redis_db  # noqa: E402


def _use(db_url: str, data_dir: Path, broker: str | None = None) -> dict[str, str]:
    from dataops.config import reset_settings
    from dataops.db import dispose_engines

    env = dict(
        os.environ,
        DATAOPS_DATABASE_URL=db_url,
        DATAOPS_DATA_DIR=str(data_dir),
        PYTHONPATH=str(ROOT),
    )
    env.pop("DATAOPS_BROKER_URL", None)
    if broker:
        env["DATAOPS_BROKER_URL"] = broker
    os.environ.pop("DATAOPS_BROKER_URL", None)
    os.environ.update({k: v for k, v in env.items() if k.startswith("DATAOPS_")})
    dispose_engines()
    reset_settings()
    return env


def api_throughput(args: argparse.Namespace, tmp: Path) -> list[str]:
    from dataops.auth import service as auth
    from dataops.catalog.ingest import ingest
    from dataops.db import session_scope
    from dataops.migrate import upgrade
    from dataops.selection.run import select_batch
    from dataops.selection.schemas import select_request

    name = f"dataops_api_{uuid.uuid4().hex[:8]}"
    env = _use(create_database(name), tmp / "api-data")
    api = None
    try:
        upgrade()
        ingest(
            [str(p) for p in make_images(tmp / "catalog", args.catalog_images)],
            transaction=session_scope,
        )
        with session_scope() as s:
            request = {"strategy": "random", "size": 200, "purpose": "cold_start"}
            batch = select_batch(s, select_request(request), actor="benchmark")
            batch_id = batch.id
            auth.create_user(s, "bench", "scientist", actor="benchmark")
            token = auth.create_token(s, "bench", expires_in=None, actor="benchmark").token
        port = free_port()
        api = start_api(env, port, workers=2)
        url = f"http://127.0.0.1:{port}"
        run_load(url, token, ["/v1/images?limit=50"], clients=4, seconds=30, max_requests=100)
        rows = []
        for label, path in [
            ("GET /v1/images?limit=50", "/v1/images?limit=50"),
            ("GET /v1/batches/{id}", f"/v1/batches/{batch_id}"),
        ]:
            result = run_load(
                url,
                token,
                [path],
                clients=args.clients,
                seconds=args.max_seconds,
                max_requests=args.requests,
            )
            answered = len(result.latencies)
            rows.append(
                f"| {label} | {args.clients} | {answered:,} | {answered / result.wall:,.0f} | "
                f"{result.percentile(0.5) * 1000:.0f} | {result.percentile(0.95) * 1000:.0f} | "
                f"{result.error_count} |"
            )
            for kind, count in result.errors.most_common():
                print(f"  {label}: {count} x {kind}", file=sys.stderr)
        return rows
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=20)
        from dataops.db import dispose_engines

        dispose_engines()
        drop_database(name)


def job_time(args: argparse.Namespace, tmp: Path, workers: int, lists: list[Path]) -> float:
    from dataops.db import session_scope
    from dataops.jobs import dispatch
    from dataops.jobs import service as jobs_service
    from dataops.migrate import upgrade

    name = f"dataops_jobs_{uuid.uuid4().hex[:8]}"
    db_url = create_database(name)
    try:
        with redis_db() as broker:
            env = _use(db_url, tmp / f"jobs-data-{workers}", broker)
            upgrade()
            procs = [
                CeleryWorker(env, "ingest", concurrency=1, name=f"bench{i}").start()
                for i in range(workers)
            ]
            try:
                start = time.perf_counter()
                ids = [
                    dispatch.submit("ingest", {"paths": [str(p)]}, actor="benchmark").id
                    for p in lists
                ]
                deadline = time.monotonic() + args.max_seconds * 10
                while time.monotonic() < deadline:
                    with session_scope() as s:
                        if all(
                            jobs_service.get_job(s, j).status in ("succeeded", "failed")
                            for j in ids
                        ):
                            break
                    time.sleep(0.3)
                return time.perf_counter() - start
            finally:
                for p in procs:
                    p.stop()
    finally:
        from dataops.db import dispose_engines

        dispose_engines()
        drop_database(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--max-seconds", type=float, default=60)
    parser.add_argument("--catalog-images", type=int, default=2000)
    parser.add_argument("--job-images", type=int, default=10_000)
    parser.add_argument("--skip-jobs", action="store_true", help="Only the HTTP part.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rows = api_throughput(args, tmp)
        print("\n| endpoint | clients | answers | answers/s | p50 (ms) | p95 (ms) | errors |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        print("\n".join(rows), flush=True)
        if args.skip_jobs:
            return
        files = make_images(tmp / "job-images", args.job_images, seed=1)
        lists = shard_lists(files, 8, tmp)
        times = {w: job_time(args, tmp, w, lists) for w in (1, 2)}
        print(f"\n| {args.job_images:,}-image ingest (8 jobs) | seconds | images/s |")
        print("|---|---:|---:|")
        for w, t in times.items():
            print(f"| {w} worker{'s' if w > 1 else ''} | {t:.1f} | {args.job_images / t:,.0f} |")


if __name__ == "__main__":
    main()
