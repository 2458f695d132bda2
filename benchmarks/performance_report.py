"""Annotator and vendor performance report on a large PostgreSQL catalog: server time per report.

Creates the database ``dataops_bench_<random>`` through ``--admin-url`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``) and drops it afterwards. The catalog is
generated inside PostgreSQL with ``generate_series`` (setup time is printed, not part of any
case): ``--items`` batch items (default 1,000,000) in batches of 100 (10,000 batches) on 10
vendor queues, pushed over a year; one answer per item from one of 200 annotators and a
second answer on one item in five (1.2M label versions, plus a gold answer for one image
in twenty), each with a lead_time; one batch in two audited, one audit in ten with a relabel
batch. Each case runs ``--repeat`` times (default 10) after one warm-up; the table shows the
median and the worst (p95 of ten is the worst but one: both are printed).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BASE = datetime(2025, 12, 1, tzinfo=UTC)


def _populate(url: str, n: int) -> None:
    from sqlalchemy import create_engine, text

    statements = [
        "INSERT INTO vendors (id, name, created_at) "
        "SELECT v, 'vendor-' || v, now() FROM generate_series(1, 10) v",
        "INSERT INTO annotators (id, name, vendor_id, mapped_by, created_at) "
        "SELECT a, 'annotator-' || a, 1 + a % 10, 'import', now() FROM generate_series(1, 200) a",
        "INSERT INTO guidelines (id, name, version, sha256, kind, classes, body, label_config, "
        "created_at) VALUES (1, 'bench', 1, repeat('b', 64), 'classification', '[]', '', '', "
        "now())",
        "INSERT INTO queues (id, name, vendor_id, guideline_id, connection, overlap, gold, "
        "on_reject, relabel_answers, relabel_agree, relabel_rounds, accept_rule, created_at) "
        "SELECT q, 'queue-' || q, q, 1, 'default', 0.2, 0.05, 'relabel_failed', 3, 2, 2, "
        "'majority', now() FROM generate_series(1, 10) q",
        "INSERT INTO images (id, sha256, uri, bytes, attributes, status, ingested_at) "
        "SELECT i + 1, encode(sha256(int8send(i)), 'hex'), 's3://b/' || i || '.jpg', 1000, "
        "'{}', 'ok', now() FROM generate_series(0, :n - 1) i",
        # Batch b (1-based) holds images (b-1)*100 .. b*100-1, pushed b * 52.56 minutes after
        # BASE (10k batches over a year), due three days later.
        "INSERT INTO batches (id, purpose, strategy, params, seed, queue_id, size, overlap, gold, "
        "status, due_at, created_at, sent_at) "
        "SELECT b, 'active_learning', 'uncertainty', '{}', 0, 1 + b % 10, 100, 0.2, 0.05, "
        "'accepted', :base + (b * interval '52.56 minutes') + interval '3 days', now(), "
        ":base + b * interval '52.56 minutes' FROM generate_series(1, :n / 100) b",
        # Gold answers (no batch) for one image in twenty.
        "INSERT INTO label_versions (id, image_id, guideline_id, task, payload, source, "
        "source_id, source_key, status, created_at) "
        "SELECT :n * 2 + i, i + 1, 1, 'default', jsonb_build_object('class', 'c' || (i % 7)), "
        "'csv', 'gold-' || i, 'csv:gold-' || i || ':-', 'accepted', now() "
        "FROM generate_series(0, :n - 1, 20) i",
        "INSERT INTO batch_items (id, batch_id, image_id, item_key, position, is_overlap, is_gold, "
        "gold_label_version_id, required_annotations, pushed_at) "
        "SELECT i + 1, i / 100 + 1, i + 1, 'k' || i, i % 100, i % 5 = 0, i % 20 = 0, "
        "CASE WHEN i % 20 = 0 THEN :n * 2 + i END, 1, "
        ":base + (i / 100 + 1) * interval '52.56 minutes' FROM generate_series(0, :n - 1) i",
        "INSERT INTO label_versions (id, image_id, annotator_id, batch_id, guideline_id, task, "
        "payload, source, source_id, source_key, source_updated_at, status, lead_time, "
        "created_at) "
        "SELECT i + 1, i + 1, 1 + i % 200, i / 100 + 1, 1, 'default', "
        "jsonb_build_object('class', 'c' || ((i * 13) % 7)), 'labelstudio', 'default:' || i, "
        "'labelstudio:default:' || i || ':-', "
        ":base + (i / 100 + 1) * interval '52.56 minutes' + (i % 97) * interval '1 hour', "
        "CASE WHEN i % 3 = 0 THEN 'accepted' ELSE 'submitted' END, 5 + (i % 61), now() "
        "FROM generate_series(0, :n - 1) i",
        "INSERT INTO label_versions (id, image_id, annotator_id, batch_id, guideline_id, task, "
        "payload, source, source_id, source_key, source_updated_at, status, lead_time, "
        "created_at) "
        "SELECT :n + i + 1, i + 1, 1 + (i + 7) % 200, i / 100 + 1, 1, 'default', "
        "jsonb_build_object('class', 'c' || ((i * 11) % 7)), 'labelstudio', 'default:b' || i, "
        "'labelstudio:default:b' || i || ':-', "
        ":base + (i / 100 + 1) * interval '52.56 minutes' + (i % 89) * interval '1 hour', "
        "'submitted', 3 + (i % 47), now() FROM generate_series(0, :n - 1, 5) i",
        "INSERT INTO audits (id, batch_id, gate, pass_rate, decision, metrics, "
        "relabel_batch_id, created_at) "
        "SELECT b, b, 0.9, 0.93, 'accepted', '{}', CASE WHEN b % 20 = 0 AND b < :n / 100 THEN b + 1 END, "
        "now() "
        "FROM generate_series(2, :n / 100, 2) b",
    ]
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), {"n": n, "base": BASE})
        for table in (
            "vendors",
            "annotators",
            "guidelines",
            "queues",
            "images",
            "batches",
            "batch_items",
            "label_versions",
            "audits",
        ):
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
                )
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def _timed(run: Callable[[], object], repeat: int) -> list[float]:
    run()
    times = []
    for _ in range(repeat):
        begin = time.perf_counter()
        run()
        times.append(time.perf_counter() - begin)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    parser.add_argument("--url", help="a catalog kept by --keep: run on it, generate nothing")
    args = parser.parse_args()

    import psycopg

    from dataops import migrate
    from dataops.db import dispose_engines, get_engine
    from dataops.performance.schemas import PerformanceRequest
    from dataops.performance.service import performance_report

    name = f"dataops_bench_{uuid.uuid4().hex[:10]}"
    url = args.url or (
        args.admin_url.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0]
        + "/"
        + name
    )
    if not args.url:
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        migrate.upgrade(url)
        if not args.url:
            begin = time.perf_counter()
            _populate(url, args.items)
            print(f"catalog generated in {time.perf_counter() - begin:.0f} s")
        from sqlalchemy.orm import Session

        engine = get_engine(url)
        mid = BASE + timedelta(days=180)
        cases = {
            "annotators, 30 days": PerformanceRequest(since=mid, until=mid + timedelta(days=30)),
            "vendors, 30 days": PerformanceRequest(
                since=mid, until=mid + timedelta(days=30), group="vendor"
            ),
            "annotators, 7 days": PerformanceRequest(since=mid, until=mid + timedelta(days=7)),
            "annotators, whole year": PerformanceRequest(
                since=BASE, until=BASE + timedelta(days=400)
            ),
            "vendors, whole year": PerformanceRequest(
                since=BASE, until=BASE + timedelta(days=400), group="vendor"
            ),
        }
        with Session(engine) as session:
            versions = session.connection().exec_driver_sql("SELECT count(*) FROM label_versions")
            print(f"label versions: {versions.scalar():,}")
            print("\n| report | answers | rows | median ms | worst ms |")
            print("|---|---:|---:|---:|---:|")
            for label, request in cases.items():
                report = performance_report(session, request)
                times = _timed(lambda r=request: performance_report(session, r), args.repeat)
                answers = sum(r.answers for r in report.rows)
                print(
                    f"| {label} | {answers:,} | {len(report.rows)} | "
                    f"{1000 * statistics.median(times):.0f} | {1000 * max(times):.0f} |"
                )
    finally:
        dispose_engines()
        if args.keep and not args.url:
            print(f"kept: --url {url}")
        if not (args.url or args.keep):
            _drop(args.admin_url, name)


def _drop(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


if __name__ == "__main__":
    main()
