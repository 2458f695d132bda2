"""Load: ingest synthetic images on 2 Celery workers while the API serves reads.

    .venv/bin/python benchmarks/load.py [--images 100000] [--shards 16] [--clients 8]

Everything runs on this machine over loopback: a fresh PostgreSQL database, a private Redis
database, two `celery worker` processes (one pool process each) on the `ingest` queue and
`dataops serve` on a free 127.0.0.1 port. The images are split into `--shards` list files,
one ingest job each, so both workers stay busy; meanwhile `--clients` concurrent readers page
through GET /v1/images and GET /v1/jobs until ingest ends (bounded by `--max-seconds`).
Prints images/s, API p50/p95 latency and whether the catalog's row count matches the input.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._service import free_port, hammer, make_images, percentile, shard_lists, start_api  # noqa: E402
from tests.support.services import CeleryWorker, create_database, drop_database, redis_db  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=3600)
    args = parser.parse_args()

    db_name = f"dataops_load_{uuid.uuid4().hex[:8]}"
    db_url = create_database(db_name)
    api = None
    try:
        with tempfile.TemporaryDirectory() as tmp, redis_db() as broker:
            tmpdir = Path(tmp)
            t0 = time.perf_counter()
            files = make_images(tmpdir / "images", args.images)
            print(f"generated {len(files)} images in {time.perf_counter() - t0:.0f} s", flush=True)
            lists = shard_lists(files, args.shards, tmpdir)
            env = dict(os.environ, DATAOPS_DATABASE_URL=db_url, DATAOPS_BROKER_URL=broker,
                       DATAOPS_DATA_DIR=str(tmpdir / "data"), PYTHONPATH=str(ROOT))  # fmt: skip
            os.environ.update({k: v for k, v in env.items() if k.startswith("DATAOPS_")})
            from dataops.auth import service as auth
            from dataops.config import reset_settings
            from dataops.db import session_scope
            from dataops.jobs import dispatch
            from dataops.jobs import service as jobs_service
            from dataops.migrate import upgrade

            reset_settings()
            upgrade()
            with session_scope() as s:
                auth.create_user(s, "loadreader", "scientist", actor="benchmark")
                token = auth.create_token(s, "loadreader", expires_in=None, actor="benchmark").token
            port = free_port()
            api = start_api(env, port)
            workers = [
                CeleryWorker(env, "ingest", concurrency=1, name=f"load{i}") for i in range(2)
            ]
            for w in workers:
                w.start()
            try:
                start = time.perf_counter()
                jobs = [
                    dispatch.submit("ingest", {"paths": [str(p)]}, actor="benchmark").id
                    for p in lists
                ]

                def finished() -> bool:
                    with session_scope() as s:
                        states = [jobs_service.get_job(s, j).status for j in jobs]
                    return all(st in ("succeeded", "failed") for st in states)

                paths = [
                    "/v1/images?limit=50",
                    "/v1/images?status=ok&limit=50&offset=100",
                    "/v1/jobs",
                ]
                latencies, _ = hammer(
                    f"http://127.0.0.1:{port}", token, paths, clients=args.clients,
                    max_requests=10**7, max_seconds=args.max_seconds, stop=finished,
                )  # fmt: skip
                while not finished():
                    time.sleep(0.5)
                elapsed = time.perf_counter() - start
            finally:
                for w in workers:
                    w.stop()
            from sqlalchemy import func, select

            from dataops.catalog.models import Image as ImageRow

            with session_scope() as s:
                rows = s.scalar(select(func.count()).select_from(ImageRow)) or 0
                failed = [j for j in jobs if jobs_service.get_job(s, j).status != "succeeded"]
            lat = [v for values in latencies.values() for v in values]
            print(
                "\n| images | ingest workers | seconds | images/s | API requests | API p50 (ms) | API p95 (ms) | rows in catalog | lost |"
            )
            print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            print(
                f"| {args.images:,} | 2 | {elapsed:.0f} | {args.images / elapsed:,.0f} | {len(lat):,} | "
                f"{statistics.median(lat) * 1000 if lat else float('nan'):.0f} | {percentile(lat, 0.95) * 1000:.0f} | "
                f"{rows:,} | {args.images - rows} |"
            )
            if failed:
                print(f"failed jobs: {failed}")
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=20)
        from dataops.db import dispose_engines

        dispose_engines()
        drop_database(db_name)


if __name__ == "__main__":
    main()
