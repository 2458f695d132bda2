"""Manifest benchmark: split, create and verify a synthetic 1M-row manifest.

Two suites. ``body`` times the pure body code on rows built in memory; ``db`` builds a
synthetic catalog in a fresh PostgreSQL database and times the real service:
``create_manifest`` (catalog query, splits, body + Parquet into the blob store, datasheet,
rows into ``manifest_rows``, commit) and ``verify_manifest --body-only``.

Each case runs in its own Python process so that its peak RSS (``ru_maxrss``) belongs to it
alone. The split and create cases first build the same rows in memory (the "rows" case shows
what they cost on their own; "over rows" is the extra); the verify cases read only the files. Rows are synthetic and deterministic: 20 classes, one image in ten with two
boxes, duplicate groups of three, paths and keys of realistic length.

    python benchmarks/manifest.py [--rows 1000000] [--suite body|db|all]

Cases: ``splits`` assigns splits to every image through its group; ``jsonl`` builds the
canonical body in memory and hashes it; ``create`` is :func:`write_body` (canonical JSONL
streamed through the hash, plus Parquet); ``verify`` is :func:`verify_body` on that file
(hash, header, row count); ``verify deep`` also parses and checks every row; ``verify
parquet`` rebuilds the body from the Parquet copy and hashes it. "cpu" is the process CPU
time of the timed part: far above "seconds" means threads, far below means a busy machine.

The ``db`` suite creates the database ``dataops_bench_<random>`` through ``--admin-url``
(default ``postgresql://postgres@127.0.0.1:5432/postgres``) and drops it afterwards. The
catalog has ``--rows`` labeled images (20 classes, duplicate groups of three for four images
in five, a second, unaccepted label on one image in ten from another annotator) plus 1 % more
images that are quarantined or unlabeled; it is generated inside PostgreSQL with
``generate_series`` (setup time is printed, not part of any case). Cases: ``db create`` is a
new manifest (rows stored), ``db create same content`` a second name for it (rows reused),
``db verify body`` the body-only verify of the stored manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SPEC = "train=0.8,val=0.1,test=0.1"
SEED = 20261101
CASES = ("rows", "splits", "jsonl", "create", "verify", "verify deep", "verify parquet")
DB_CASES = ("db create", "db create same content", "db verify body")
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CLASSES = [f"class-{i:02d}" for i in range(20)]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _group_of(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Image -> group key: the persistent group id, or the image itself when ungrouped."""
    return {
        r["sha256"]: str(r["dup_group_id"]) if r["dup_group_id"] is not None else r["sha256"]
        for r in rows
    }


def _rows(n: int) -> list[dict[str, Any]]:
    from dataops.manifests.splits import assign_members

    rows: list[dict[str, Any]] = []
    for i in range(n):
        sha = hashlib.sha256(i.to_bytes(8, "big")).hexdigest()
        cls = CLASSES[i * 7 % len(CLASSES)]
        label: dict[str, Any] = {"class": cls}
        if i % 10 == 0:
            label["boxes"] = [
                {"class": cls, "x": 0.125, "y": 0.25, "w": 0.5, "h": 0.375},
                {"class": "person", "x": 0.0625, "y": 0.5, "w": 0.25, "h": 0.4375},
            ]
        rows.append(
            {
                "sha256": sha,
                "blob_key": f"blobs/sha256/{sha[:2]}/{sha[2:4]}/{sha}",
                "uri": f"s3://vision-raw/site-{i % 37:02d}/2026-10-{i % 28 + 1:02d}/IMG_{i:08d}.jpg",
                "split": "",
                "label_version_id": 5_000_000 + i,
                "label": label,
                "guideline_version": "clothing-v3",
                "dup_group_id": i // 3 if i % 5 else None,
                "width": 400,
                "height": 533,
            }
        )
    splits = assign_members(_group_of(rows), SEED, SPEC)
    for row in rows:
        row["split"] = splits[row["sha256"]]
    return rows


def _run_case(case: str, n: int, directory: Path) -> dict[str, Any]:
    from dataops.manifests import body
    from dataops.manifests.splits import assign_members

    result: dict[str, Any] = {}
    rows = [] if case.startswith("verify") else _rows(n)
    start, cpu = time.perf_counter(), time.process_time()
    if case == "splits":
        assign_members(_group_of(rows), SEED, SPEC)
    elif case == "jsonl":
        result["id"] = body.manifest_id(body.canonical_jsonl(rows, SEED, SPEC))
    elif case == "create":
        files = body.write_body(directory, rows, SEED, SPEC)
        result["id"] = files.manifest_id
        result["jsonl_mib"] = files.jsonl_path.stat().st_size / 2**20
        result["parquet_mib"] = files.parquet_path.stat().st_size / 2**20
    elif case.startswith("verify"):
        (jsonl,) = directory.glob("*.jsonl")
        expected = "sha256:" + jsonl.stem
        if case == "verify parquet":
            result["problems"] = body.verify_parquet(jsonl.with_suffix(".parquet"), expected)
        else:
            result["problems"] = body.verify_body(jsonl, expected, deep=case == "verify deep")
    if case != "rows":
        result["seconds"] = time.perf_counter() - start
        result["cpu"] = time.process_time() - cpu
    result["peak_rss_mib"] = _peak_rss_mib()
    return result


def _populate(url: str, n: int) -> None:
    """A synthetic catalog, generated inside PostgreSQL (no rows travel from Python)."""
    from sqlalchemy import create_engine, text

    extra = max(n // 100, 2)
    statements = [
        "INSERT INTO vendors (id, name, created_at) "
        "SELECT v, 'vendor-' || v, now() FROM generate_series(1, 3) v",
        "INSERT INTO annotators (id, name, vendor_id, mapped_by, created_at) "
        "SELECT a, 'annotator-' || a, 1 + a % 3, 'import', now() FROM generate_series(1, 51) a",
        "INSERT INTO guidelines (id, name, version, sha256, kind, classes, body, label_config, "
        "created_at) VALUES (1, 'bench', 1, repeat('b', 64), 'classification', '[]', '', '', "
        "now())",
        "INSERT INTO dup_groups (id, size, max_distance, methods, created_at, updated_at) "
        "SELECT g, 3, 4, 'phash', now(), now() FROM generate_series(1, :n / 3 + 1) g",
        "INSERT INTO images (id, sha256, uri, blob_key, width, height, format, mode, bytes, "
        "attributes, status, quarantine_reason, ingested_at, dup_group_id) "
        "SELECT i + 1, h, 's3://vision-raw/site-' || lpad((i % 37)::text, 2, '0') || "
        "'/2026-10-' || lpad((i % 28 + 1)::text, 2, '0') || '/IMG_' || lpad(i::text, 8, '0') "
        "|| '.jpg', substr(h, 1, 2) || '/' || h, 400, 533, 'JPEG', 'RGB', 50000 + i % 9000, "
        "jsonb_build_object('site', 'site-' || lpad((i % 37)::text, 2, '0'), "
        "'device', 'cam-' || (i % 5)), "
        "CASE WHEN i >= :n AND i % 2 = 0 THEN 'quarantined' ELSE 'ok' END, "
        "CASE WHEN i >= :n AND i % 2 = 0 THEN 'truncated file' END, now(), "
        "CASE WHEN i < :n AND i % 5 <> 0 THEN i / 3 + 1 END "
        "FROM (SELECT i, encode(sha256(int8send(i)), 'hex') AS h "
        "      FROM generate_series(0, :n + :extra - 1) i) s",
        "INSERT INTO label_versions (id, image_id, annotator_id, guideline_id, task, payload, "
        "source, source_id, source_key, status, created_at) "
        "SELECT i + 1, i + 1, 1 + i % 50, 1, 'default', "
        "jsonb_build_object('class', 'class-' || lpad((i * 7 % 20)::text, 2, '0')), "
        "'csv', i::text, 'csv:' || i || ':-', 'accepted', now() "
        "FROM generate_series(0, :n - 1) i",
        "INSERT INTO label_versions (id, image_id, annotator_id, guideline_id, task, payload, "
        "source, source_id, source_key, status, created_at) "
        "SELECT :n + i / 10 + 1, i + 1, 51, 1, 'default', jsonb_build_object('class', 'other'), "
        "'csv', 'second-' || i, 'csv:second-' || i || ':-', 'submitted', now() "
        "FROM generate_series(0, :n - 1, 10) i",
    ]
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), {"n": n, "extra": extra})
        for table in ("vendors", "annotators", "guidelines", "dup_groups", "images"):
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
                )
            )
        conn.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('label_versions', 'id'), max(id)) "
                "FROM label_versions"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def _run_db_case(case: str) -> dict[str, Any]:
    from dataops.db import session_scope
    from dataops.manifests import rows
    from dataops.manifests.create import create_manifest
    from dataops.manifests.schemas import ManifestRequest
    from dataops.manifests.verify import verify_manifest

    result: dict[str, Any] = {}
    marks: list[tuple[str, float]] = []
    copy_rows = rows.copy_rows_postgres

    def timed_copy_rows(*args: Any) -> None:
        begin = time.perf_counter()
        copy_rows(*args)
        result["rows_copy_seconds"] = time.perf_counter() - begin

    rows.copy_rows_postgres = timed_copy_rows  # type: ignore[assignment]
    start, cpu = time.perf_counter(), time.process_time()
    with session_scope() as session:
        if case == "db verify body":
            report = verify_manifest(session, "bench", body_only=True)
            result["problems"] = report.problems
        else:
            name = "bench" if case == "db create" else "bench-again"
            manifest = create_manifest(
                session,
                ManifestRequest(name=name, seed=SEED, splits=SPEC, stratify_by="label"),
                progress=lambda _d, _t, message: marks.append((message, time.perf_counter())),
            )
            result["id"], result["rows"] = manifest.content_hash, manifest.row_count
    end = time.perf_counter()
    result["seconds"] = end - start
    result["cpu"] = time.process_time() - cpu
    result["peak_rss_mib"] = _peak_rss_mib()
    if marks:
        bounds = [t for _, t in marks] + [end]
        result["stages"] = {
            message: bounds[i + 1] - bounds[i] for i, (message, _) in enumerate(marks)
        }
    return result


def _in_subprocess(
    case: str, n: int, directory: Path, env: dict[str, str] | None = None
) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--case", case, "--rows", str(n), "--dir", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if out.returncode != 0:
        raise SystemExit(f"case {case!r} failed:\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _db_suite(n: int, admin_url: str) -> None:
    import os
    import uuid

    import psycopg

    from dataops import migrate

    name = f"dataops_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + "/" + name
    try:
        with tempfile.TemporaryDirectory(prefix="manifest-bench-db-") as tmp:
            env = {**os.environ, "DATAOPS_DATABASE_URL": url, "DATAOPS_DATA_DIR": tmp}
            migrate.upgrade(url)
            begin = time.perf_counter()
            _populate(url, n)
            setup = time.perf_counter() - begin
            results = {case: _in_subprocess(case, n, Path(tmp), env) for case in DB_CASES}
    finally:
        from dataops.db import dispose_engines

        dispose_engines()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    create = results["db create"]
    assert results["db create same content"]["id"] == create["id"]
    assert results["db verify body"]["problems"] == [], results["db verify body"]["problems"]
    print(
        f"\nDB-backed manifest on PostgreSQL: {create['rows']:,} rows "
        f"(catalog generated in {setup:.0f} s)\n"
    )
    print("| case | seconds | cpu | peak RSS MiB |")
    print("|---|---:|---:|---:|")
    for case in DB_CASES:
        r = results[case]
        print(f"| {case} | {r['seconds']:.2f} | {r['cpu']:.2f} | {r['peak_rss_mib']:,.0f} |")
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in create["stages"].items())
    print(
        f"\ndb create stages: {stages} (rows COPY {create['rows_copy_seconds']:.1f} s, "
        "running alongside the Parquet copy and the datasheet)"
    )
    print(f"id {create['id']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--suite", choices=("body", "db", "all"), default="all")
    parser.add_argument("--admin-url", default=ADMIN_URL, help="PostgreSQL maintenance database.")
    parser.add_argument("--case", choices=CASES + DB_CASES, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case in DB_CASES:
        print(json.dumps(_run_db_case(args.case)))
        return
    if args.case:
        print(json.dumps(_run_case(args.case, args.rows, args.dir)))
        return
    if args.suite in ("body", "all"):
        _body_suite(args.rows)
    if args.suite in ("db", "all"):
        _db_suite(args.rows, args.admin_url)


def _body_suite(rows: int) -> None:
    with tempfile.TemporaryDirectory(prefix="manifest-bench-") as tmp:
        results = {case: _in_subprocess(case, rows, Path(tmp)) for case in CASES}
    baseline = results["rows"]["peak_rss_mib"]
    with_rows = ("splits", "jsonl", "create")
    create = results["create"]
    assert results["jsonl"]["id"] == create["id"], "in-memory and streamed bodies differ"
    for case in ("verify", "verify deep", "verify parquet"):
        assert results[case]["problems"] == [], results[case]["problems"]
    print(f"Manifest benchmark: {rows:,} rows, split spec {SPEC}\n")
    print("| case | seconds | cpu | peak RSS MiB | over rows MiB |")
    print("|---|---:|---:|---:|---:|")
    for case in CASES:
        r = results[case]
        seconds = f"{r['seconds']:.2f} | {r['cpu']:.2f}" if "seconds" in r else "- | -"
        peak = r["peak_rss_mib"]
        extra = f"{peak - baseline:,.0f}" if case in with_rows else "-"
        print(f"| {case} | {seconds} | {peak:,.0f} | {extra} |")
    print(
        f"\nJSONL {create['jsonl_mib']:,.0f} MiB, Parquet {create['parquet_mib']:,.0f} MiB, "
        f"id {create['id']}"
    )


if __name__ == "__main__":
    main()
