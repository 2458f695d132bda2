"""Ingest + hash throughput of dataops next to imagededup's PHash encoder, same files, same run.

    .venv/bin/python benchmarks/ingest.py [--corpus ../shared/corpus] [--workers 2] [--repeat 3]

dataops: the whole `dataops ingest` path into a fresh SQLite catalog (read, sha256, decode
check, metadata, pHash + dHash + mirrored pHash, batched writes). imagededup: `PHash().encode_images`
(decode + one pHash) on the same folder. Both use the same number of processes and run
alternately, `--repeat` times each; the table shows the medians, the spread of the per-round
speed-ups and the load average, since only the ratio is comparable on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._baseline import imagededup_phash
from tests.support.corpus import CORPUS


def _rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def run_dataops(folder: Path, workers: int) -> tuple[int, float]:
    from dataops.catalog.ingest import ingest
    from dataops.config import reset_settings
    from dataops.db import dispose_engines, session_scope
    from dataops.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DATAOPS_DATA_DIR"] = tmp
        os.environ["DATAOPS_INGEST__WORKERS"] = str(workers)
        os.environ.pop("DATAOPS_DATABASE_URL", None)
        reset_settings()
        upgrade()
        start = time.perf_counter()
        result = ingest([str(folder)], transaction=session_scope)
        elapsed = time.perf_counter() - start
        dispose_engines()
    return result.files, elapsed


def run_imagededup(folder: Path, workers: int) -> tuple[int, float]:
    phasher = imagededup_phash()
    start = time.perf_counter()
    encodings = phasher.encode_images(image_dir=str(folder), num_enc_workers=workers)
    return len(encodings), time.perf_counter() - start


def _flat_copy(files: list[Path], dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, dest / f.name)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sets = {
        "clothing-dataset (1,000 JPEG ~400x533)": sorted(
            (args.corpus / "clothing-dataset").glob("*.jpg")
        ),
        "unsplash (15 JPEG, 12-24 MP)": sorted(
            (args.corpus / "unsplash-squeezesoftware").glob("*.jpg")
        ),
    }
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, files in sets.items():
            folder = _flat_copy(files, Path(tmp) / str(len(rows)))
            run_dataops(folder, args.workers)  # warm the page cache and imports for both tools
            ours, theirs = [], []
            for _ in range(args.repeat):
                n_d, t_d = run_dataops(folder, args.workers)
                n_i, t_i = run_imagededup(folder, args.workers)
                ours.append(n_d / t_d)
                theirs.append(n_i / t_i)
            ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
            rows.append((label, n_d, ours, theirs, ratios))
    load_after = os.getloadavg()
    print(
        f"\nIngest + hash throughput, {args.workers} processes, median of {args.repeat} rounds, "
        f"peak RSS {_rss_mb():.0f} MB, load average {load_before[0]:.2f} before / "
        f"{load_after[0]:.2f} after\n"
    )
    print(
        "| image set | files | dataops ingest (img/s) | imagededup PHash encode (img/s) "
        "| speed-up (median; per round) |"
    )
    print("|---|---:|---:|---:|---:|")
    for label, n, ours, theirs, ratios in rows:
        rounds = ", ".join(f"{r:.1f}" for r in ratios)
        print(
            f"| {label} | {n} | {statistics.median(ours):,.1f} | "
            f"{statistics.median(theirs):,.1f} | {statistics.median(ratios):.1f}x ({rounds}) |"
        )


if __name__ == "__main__":
    main()
