"""Manifest benchmark: split, create and verify a synthetic 1M-row manifest.

Each case runs in its own Python process so that its peak RSS (``ru_maxrss``) belongs to it
alone. The split and create cases first build the same rows in memory (the "rows" case shows
what they cost on their own; "over rows" is the extra); the verify cases read only the files. Rows are synthetic and deterministic: 20 classes, one image in ten with two
boxes, duplicate groups of three, paths and keys of realistic length.

    python benchmarks/manifest.py [--rows 1000000]

Cases: ``splits`` assigns splits to every image through its group; ``jsonl`` builds the
canonical body in memory and hashes it; ``create`` is :func:`write_body` (canonical JSONL
streamed through the hash, plus Parquet); ``verify`` is :func:`verify_body` on that file
(hash, header, row count); ``verify deep`` also parses and checks every row; ``verify
parquet`` rebuilds the body from the Parquet copy and hashes it. "cpu" is the process CPU
time of the timed part: far above "seconds" means threads, far below means a busy machine.
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
                {"label": cls, "x": 0.125, "y": 0.25, "w": 0.5, "h": 0.375},
                {"label": "person", "x": 0.0625, "y": 0.5, "w": 0.25, "h": 0.4375},
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


def _in_subprocess(case: str, n: int, directory: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--case", case, "--rows", str(n), "--dir", str(directory)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(_run_case(args.case, args.rows, args.dir)))
        return
    with tempfile.TemporaryDirectory(prefix="manifest-bench-") as tmp:
        results = {case: _in_subprocess(case, args.rows, Path(tmp)) for case in CASES}
    baseline = results["rows"]["peak_rss_mib"]
    with_rows = ("splits", "jsonl", "create")
    create = results["create"]
    assert results["jsonl"]["id"] == create["id"], "in-memory and streamed bodies differ"
    for case in ("verify", "verify deep", "verify parquet"):
        assert results[case]["problems"] == [], results[case]["problems"]
    print(f"Manifest benchmark: {args.rows:,} rows, split spec {SPEC}\n")
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
