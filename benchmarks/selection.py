"""Scoring throughput and selection latency.

Two suites:

``score``: the tiny CNN (``dataops.scoring.tinycnn``, untrained weights: speed does not depend
on them) over the clothing photos of the corpus (1,000 JPEGs, 400x533), 32x32 RGB input.
"inference" is ``score_images`` alone (decode + forward) with 0, 1 and up to 8 decoding
workers, on CPU and, when torch sees one, on CUDA; "score job" is the whole job on an embedded
catalog (decode, forward, prediction rows and embedding files). ``--suite inference`` runs the
first part alone, where only torch, pillow, fsspec and pydantic are installed.

``select``: ``select_batch`` of ``--size`` images from ``--rows`` stored predictions on
PostgreSQL. A fresh database ``dataops_bench_<hex>`` is created through ``--admin-url`` and
dropped afterwards; the synthetic catalog is bulk-loaded with COPY (setup time is printed,
not part of any case): 10-class Dirichlet probabilities, a ``site`` attribute with 8 values,
duplicate groups of two for 5 % of the images, 0.5 % quarantined, 2 % with an accepted label,
1 % in a held-out manifest split, 0.5 % in flight in an open batch. Every case runs in its
own transaction, rolled back afterwards, so all of them see the same catalog; "seconds" is
the median of ``--repeat`` runs.

    .venv/bin/python benchmarks/selection.py [--suite score|inference|select|all] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.corpus import CORPUS  # noqa: E402

CLASSES = [f"c{i}" for i in range(10)]
SITES = [f"site-{i}" for i in range(8)]
CHUNK = 100_000
NULL = "\\N"


def _use_data_dir(path: Path, database_url: str | None = None) -> None:
    from dataops.config import reset_settings
    from dataops.db import dispose_engines
    from dataops.storage import get_store

    os.environ["DATAOPS_DATA_DIR"] = str(path)
    if database_url is None:
        os.environ.pop("DATAOPS_DATABASE_URL", None)
    else:
        os.environ["DATAOPS_DATABASE_URL"] = database_url
    os.environ.pop("DATAOPS_BROKER_URL", None)
    dispose_engines()
    reset_settings()
    get_store.cache_clear()


def _tiny_model(path: Path) -> None:
    from dataops.scoring import tinycnn

    model = tinycnn.build_model(len(CLASSES), channels=3)
    tinycnn.export_torchscript(model.eval(), path, tinycnn.DEFAULT_SPEC)


def _worker_counts() -> list[int]:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return sorted({0, 1, max(1, min(8, (cpus or 1) - 1))})


def bench_inference(workdir: Path, images: Path) -> list[dict[str, Any]]:
    """``score_images`` alone (decode + forward); needs torch, not the catalog."""
    import torch

    from dataops.scoring import tinycnn
    from dataops.scoring.inference import score_images

    uris = [str(p) for p in sorted(images.glob("*.jpg"))]
    if not uris:
        raise SystemExit(f"no JPEGs under {images}")
    model_path = workdir / "tiny.pt"
    _tiny_model(model_path)
    cases = [("cpu", w) for w in _worker_counts()]
    if torch.cuda.is_available():
        cases += [("cuda", w) for w in _worker_counts() if w]
    rows = []
    for device, workers in cases:
        started = time.perf_counter()
        n = sum(
            len(b.indices)
            for b in score_images(
                model_path,
                tinycnn.DEFAULT_SPEC,
                uris,
                batch_size=64,
                num_workers=workers,
                device=device,
            )
        )
        rows.append(
            {
                "case": "inference",
                "device": device,
                "workers": workers,
                "images": n,
                "seconds": time.perf_counter() - started,
            }
        )
    return rows


def bench_score(workdir: Path, images: Path) -> list[dict[str, Any]]:
    """Inference, then the whole score job on an embedded catalog of the same images."""
    from dataops import migrate
    from dataops.catalog.ingest import ingest
    from dataops.db import session_scope
    from dataops.jobs import dispatch
    from dataops.scoring import service
    from dataops.scoring.register import register_model

    rows = bench_inference(workdir, images)
    _use_data_dir(workdir / "score")
    migrate.upgrade()
    started = time.perf_counter()
    result = ingest([str(images)], transaction=session_scope)
    print(f"setup: ingested {result.new} images in {time.perf_counter() - started:.1f} s")
    with session_scope() as session:
        mv, _ = register_model(
            session, workdir / "tiny.pt", name="tiny", classes=CLASSES, actor="bench"
        )
        ref = service.ref_of(mv)
    workers = max(_worker_counts())
    result = (
        dispatch.submit("score", {"model": ref, "workers": workers}, actor="bench").result or {}
    )
    rows.append(
        {
            "case": "score job",
            "device": result.get("device"),
            "workers": workers,
            "images": result.get("scored"),
            "seconds": result.get("seconds"),
        }
    )
    return rows


def _copy(conn: Any, table: str, columns: list[str], lines: Any) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for chunk in lines:
            copy.write(chunk)


def _probs(rng: np.random.Generator, n: int) -> np.ndarray:
    # Sharp, model-like distributions: a few uncertain rows, most confident.
    return rng.dirichlet(np.full(len(CLASSES), 0.3), size=n)


def load_catalog(url: str, rows: int, seed: int = 20261126) -> dict[str, int]:
    """Bulk-load the synthetic catalog; returns the sizes of its parts."""
    import psycopg

    from dataops.db import session_scope
    from dataops.labeling.models import Guideline, Queue, Vendor
    from dataops.manifests.models import Manifest
    from dataops.scoring import uncertainty
    from dataops.scoring.models import ModelVersion
    from dataops.selection.models import Batch

    rng = np.random.default_rng(seed)
    now = "2026-11-26T00:00:00+00:00"
    grouped = int(rows * 0.05) // 2 * 2
    groups = grouped // 2
    with session_scope() as session:
        mv = ModelVersion(
            name="bench",
            version=1,
            sha256="0" * 64,
            blob_key="00/" + "0" * 64,
            classes=CLASSES,
            input_spec={"size": [32, 32], "mean": [0.5] * 3, "std": [0.25] * 3, "channels": 3},
            has_embedding=False,
            is_current=True,
        )
        vendor = Vendor(name="bench-vendor")
        session.add_all([mv, vendor])
        session.flush()
        guideline = Guideline(
            name="bench",
            version=1,
            sha256="1" * 64,
            kind="classification",
            classes=CLASSES,
            body="#",
            label_config="<View/>",
        )
        session.add(guideline)
        session.flush()
        queue = Queue(name="bench-queue", vendor_id=vendor.id, guideline_id=guideline.id)
        session.add(queue)
        session.flush()
        batch = Batch(purpose="active_learning", strategy="random", queue_id=queue.id, params={})
        session.add(batch)
        session.add(
            Manifest(
                name="bench-eval",
                content_hash="sha256:" + "2" * 64,
                seed=0,
                splits={"train": 0.8, "val": 0.1, "test": 0.1},
                selection={},
                row_count=0,
                split_counts={},
                body_key="manifests/bench/body.jsonl",
                parquet_key="manifests/bench/body.parquet",
            )
        )
        session.flush()
        mv_id, batch_id = mv.id, batch.id
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        _copy(
            conn,
            "dup_groups",
            [
                "id",
                "representative_id",
                "size",
                "max_distance",
                "methods",
                "created_at",
                "updated_at",
            ],
            (
                "".join(
                    f"{g}\t{2 * g - 1}\t2\t3\tphash\t{now}\t{now}\n"
                    for g in range(start + 1, min(start + CHUNK, groups) + 1)
                )
                for start in range(0, groups, CHUNK)
            ),
        )

        def images() -> Any:
            for start in range(0, rows, CHUNK):
                ids = range(start + 1, min(start + CHUNK, rows) + 1)
                hashes = rng.integers(-(2**63), 2**63 - 1, size=len(ids), dtype=np.int64)
                buf = io.StringIO()
                for i, phash in zip(ids, hashes.tolist(), strict=True):
                    sha = hashlib.sha256(i.to_bytes(8, "little")).hexdigest()
                    group = (i + 1) // 2 if i <= grouped else NULL
                    status = "quarantined" if i % 200 == 7 else "ok"
                    attrs = json.dumps({"site": SITES[i % len(SITES)]})
                    buf.write(
                        f"{i}\t{sha}\t/data/bench/{i:07d}.jpg\t{50_000 + i % 9_000}\t{attrs}\t"
                        f"{status}\t{now}\t{group}\t{phash}\n"
                    )
                yield buf.getvalue()

        _copy(
            conn,
            "images",
            [
                "id",
                "sha256",
                "uri",
                "bytes",
                "attributes",
                "status",
                "ingested_at",
                "dup_group_id",
                "phash",
            ],
            images(),
        )

        def predictions() -> Any:
            for start in range(0, rows, CHUNK):
                stop = min(start + CHUNK, rows)
                p = _probs(rng, stop - start)
                scores = uncertainty.all_scores(p)
                top = p.argmax(axis=1)
                buf = io.StringIO()
                for j in range(stop - start):
                    probs = "[" + ",".join(f"{x:.6g}" for x in p[j]) + "]"
                    buf.write(
                        f"{mv_id}\t{start + j + 1}\t{probs}\t{CLASSES[top[j]]}\t{p[j, top[j]]:.6g}\t"
                        f"{scores['least_confidence'][j]:.9g}\t{scores['margin'][j]:.9g}\t"
                        f"{scores['entropy'][j]:.9g}\t{now}\n"
                    )
                yield buf.getvalue()

        _copy(
            conn,
            "predictions",
            [
                "model_version_id",
                "image_id",
                "probs",
                "predicted_class",
                "predicted_score",
                "least_confidence",
                "margin",
                "entropy",
                "created_at",
            ],
            predictions(),
        )
        labeled = range(3, rows + 1, 50)
        _copy(
            conn,
            "label_versions",
            [
                "image_id",
                "task",
                "payload",
                "source",
                "source_id",
                "source_key",
                "status",
                "created_at",
            ],
            (
                "".join(
                    f'{i}\tdefault\t{{"class": "{CLASSES[i % 10]}"}}\tcsv\trow{i}\tcsv:row{i}:-\t'
                    f"accepted\t{now}\n"
                    for i in labeled
                ),
            ),
        )
        held_out = range(5, rows + 1, 100)
        _copy(
            conn,
            "manifest_rows",
            ["content_hash", "sha256", "image_id", "split", "dup_group_id"],
            (
                "".join(
                    f"sha256:{'2' * 64}\t{hashlib.sha256(i.to_bytes(8, 'little')).hexdigest()}\t"
                    f"{i}\t{'val' if i % 200 == 5 else 'test'}\t"
                    f"{(i + 1) // 2 if i <= grouped else NULL}\n"
                    for i in held_out
                ),
            ),
        )
        claimed = range(11, rows + 1, 200)
        _copy(
            conn,
            "image_claims",
            ["image_id", "batch_id", "claimed_at"],
            ("".join(f"{i}\t{batch_id}\t{now}\n" for i in claimed),),
        )
        for table in ("images", "dup_groups"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        conn.execute("ANALYZE")
    return {
        "images": rows,
        "predictions": rows,
        "in dup groups": grouped,
        "labeled": len(labeled),
        "held out": len(held_out),
        "in flight": len(claimed),
    }


SELECT_CASES: list[tuple[str, dict[str, Any]]] = [
    ("margin", {"strategy": "margin"}),
    ("entropy", {"strategy": "entropy"}),
    ("random", {"strategy": "random"}),
    ("margin, stratified by site", {"strategy": "margin", "stratify_by": "site"}),
    ("hard_negative c3 (unlabeled)", {"strategy": "hard_negative", "class_name": "c3"}),
]


def bench_select(
    workdir: Path, admin_url: str, rows: int, size: int, repeat: int
) -> list[dict[str, Any]]:
    import psycopg

    from dataops import migrate
    from dataops.db import session_scope
    from dataops.selection import run
    from dataops.selection.schemas import select_request

    name = f"dataops_bench_{uuid.uuid4().hex[:10]}"
    plain_admin = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    host = plain_admin.rsplit("/", 1)[0].removeprefix("postgresql://")
    url = f"postgresql+psycopg://{host}/{name}"
    try:
        _use_data_dir(workdir / "select", url)
        migrate.upgrade()
        started = time.perf_counter()
        parts = load_catalog(url, rows)
        print(f"setup: loaded {parts} in {time.perf_counter() - started:.1f} s")
        out = []
        for label, request in SELECT_CASES:
            times = []
            eligible = picked = 0
            for _ in range(repeat):
                with session_scope() as session:
                    started = time.perf_counter()
                    fields = {"size": size, "seed": 1, "task": "default", **request}
                    batch = run.select_batch(session, select_request(fields), actor="bench")
                    times.append(time.perf_counter() - started)
                    eligible, picked = batch.params["eligible"], batch.size
                    session.rollback()
            out.append(
                {
                    "case": label,
                    "eligible": eligible,
                    "size": picked,
                    "seconds": statistics.median(times),
                    "best": min(times),
                }
            )
            print(f"  {label}: {statistics.median(times):.2f} s", flush=True)
        return out
    finally:
        from dataops.db import dispose_engines

        dispose_engines()
        with psycopg.connect(plain_admin, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(columns) + " |"]
    lines.append("|" + "|".join("---:" if i else "---" for i in range(len(columns))) + "|")
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--suite",
        choices=["score", "inference", "select", "all"],
        default="all",
        help="inference: score_images alone, for machines without the catalog's dependencies",
    )
    parser.add_argument("--images", type=Path, default=CORPUS / "clothing-dataset")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    report = [f"Machine: {cpus} CPUs, GPU: {gpu}, torch {torch.__version__}\n"]
    with tempfile.TemporaryDirectory(prefix="dataops-bench-") as tmp:
        workdir = Path(tmp)
        if args.suite in ("score", "inference", "all"):
            rows = (
                bench_inference(workdir, args.images)
                if args.suite == "inference"
                else bench_score(workdir, args.images)
            )
            report.append(
                _table(
                    "Scoring throughput (tiny CNN, 32x32 input, clothing JPEGs 400x533)",
                    ["case", "device", "workers", "images", "seconds", "images/s"],
                    [
                        [
                            r["case"],
                            r["device"],
                            r["workers"],
                            r["images"],
                            f"{r['seconds']:.2f}",
                            f"{r['images'] / r['seconds']:.0f}",
                        ]
                        for r in rows
                    ],
                )
            )
        if args.suite in ("select", "all"):
            rows = bench_select(workdir, args.admin_url, args.rows, args.size, args.repeat)
            report.append(
                _table(
                    f"Selection latency (K={args.size:,} from {args.rows:,} predictions, "
                    "PostgreSQL, median of "
                    f"{args.repeat})",
                    ["case", "eligible", "batch", "seconds", "best"],
                    [
                        [
                            r["case"],
                            f"{r['eligible']:,}",
                            r["size"],
                            f"{r['seconds']:.2f}",
                            f"{r['best']:.2f}",
                        ]
                        for r in rows
                    ],
                )
            )
    print("\n".join(report))


if __name__ == "__main__":
    main()
