"""Near-duplicate detection: quality on real photos and speed at catalog scale.

Prints Markdown tables:

1. Quality: the 25 Kodak photos and the 40 clothing photos closest to another clothing photo
   (different garments on one backdrop: the hard negatives), each with every transform in
   ``dataops.dedup.transforms``. dataops (pHash + dHash confirmation + mirrored pHash, the
   defaults) against imagededup's PHash at its default threshold (10); a semantic row when a
   TorchScript embedding model is given with ``--model``.
2. Scale: synthetic 64-bit codes (near-duplicate clusters of a few flipped bits over a skewed
   background) at 100k and 1M: index build, all-pairs search, peak RSS, and adding and
   querying 10k new codes against the 1M index; imagededup's BK-tree and brute-force search
   on the same codes at 10k and 100k, extrapolated from a timed subset of queries when the
   full run would exceed the time cap.

Each scale measurement runs in its own process so peak RSS is its own.

    python benchmarks/dedup.py            # full run (the 1M all-pairs takes minutes)
    python benchmarks/dedup.py --quick    # small sizes, a smoke test
    python benchmarks/dedup.py --skip-quality --skip-baseline --sizes 1000000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _dedup_recall
from benchmarks._baseline import imagededup_phash, imagededup_version, load_search
from benchmarks._dedup_scale import (
    Clock,
    peak_rss_mib,
    synthetic_codes,
    synthetic_views,
    views_of,
)
from dataops.catalog.hashing import Hashes, compute_hashes
from dataops.dedup.grouping import (
    DedupParams,
    ImageHashes,
    confirm_pairs,
    find_new_pairs,
    find_pairs,
    group_pairs,
    representative_rank,
)
from dataops.dedup.index import EmbeddingIndex, HashIndex, Pairs
from dataops.dedup.merges import plan_merges
from dataops.dedup.stages import (
    StagedPairs,
    StageParams,
    closest_candidates,
    group_staged,
    stage_links,
)
from dataops.dedup.transforms import TRANSFORMS
from dataops.dedup.views import new_view_pairs, view_pairs
from tests.support.corpus import CORPUS

RADIUS = 10
IMAGEDEDUP_THRESHOLD = 10  # imagededup's default max_distance_threshold
INCREMENT = 10_000


# --------------------------------------------------------------------------- quality


def hash_bytes(data: bytes) -> Hashes:
    """Decode and hash as ingest does: JPEG draft mode, then EXIF orientation."""
    with Image.open(io.BytesIO(data)) as img:
        if img.format == "JPEG":
            img.draft("L", (64, 64))
        return compute_hashes(ImageOps.exif_transpose(img))


def hardest_clothing(count: int) -> list[Path]:
    """The clothing photos whose nearest pHash neighbour among the others is closest."""
    files = sorted((CORPUS / "clothing-dataset").glob("*.jpg"))
    phash = np.array([hash_bytes(p.read_bytes()).phash for p in files], dtype=np.uint64)
    dist = np.bitwise_count(phash[:, None] ^ phash[None, :]).astype(np.int32)
    np.fill_diagonal(dist, 64)
    order = np.lexsort((np.arange(len(files)), dist.min(axis=1)))
    return [files[k] for k in order[:count]]


def build_corpus(out_dir: Path, n_kodak: int, n_clothing: int) -> list[dict[str, Any]]:
    """Write originals and their transformed copies; one record per file."""
    originals = sorted((CORPUS / "kodak-photocd").glob("*.png"))[:n_kodak]
    originals += hardest_clothing(n_clothing)
    records: list[dict[str, Any]] = []
    for k, path in enumerate(originals):
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or "PNG"
            ext = ".png" if fmt == "PNG" else ".jpg"
            img = ImageOps.exif_transpose(img)
            img.load()
            rng = np.random.default_rng(k)
            variants: list[tuple[str, Image.Image | None]] = [("original", None)]
            variants += [(name, fn(img, rng)) for name, fn in TRANSFORMS.items()]
            for kind, (name, variant) in enumerate(variants):
                target = out_dir / f"{k:03d}_{name}{ext}"
                if variant is None:
                    target.write_bytes(data)
                    size = img.width * img.height
                else:
                    variant.save(target, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
                    size = variant.width * variant.height
                records.append(
                    {"path": target, "source": k, "kind": kind, "name": name, "pixels": size}
                )
    return records


def pair_metrics(
    pairs: set[tuple[int, int]], source: np.ndarray, kind: np.ndarray, names: list[str]
) -> tuple[dict[str, float], float, int, int]:
    """Recall per transform (variant paired with its original), pair precision, wrong pairs."""
    originals = {
        int(s): int(i) for i, (s, k) in enumerate(zip(source, kind, strict=True)) if k == 0
    }
    recall: dict[str, float] = {}
    for t, name in enumerate(names[1:], start=1):
        rows = np.flatnonzero(kind == t)
        hits = sum(
            (min(r, originals[source[r]]), max(r, originals[source[r]])) in pairs for r in rows
        )
        recall[name] = hits / max(1, rows.shape[0])
    correct = sum(source[a] == source[b] for a, b in pairs)
    wrong_originals = sum(
        kind[a] == 0 and kind[b] == 0 and source[a] != source[b] for a, b in pairs
    )
    precision = correct / len(pairs) if pairs else float("nan")
    return recall, precision, len(pairs), wrong_originals


def grouped_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    """Every pair of rows that share a group label."""
    out: set[tuple[int, int]] = set()
    for label in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == label).tolist()
        out.update((a, b) for i, a in enumerate(rows) for b in rows[i + 1 :])
    return out


def embed(model_path: Path, files: list[Path]) -> np.ndarray:
    """Embeddings from a TorchScript model: (N,3,224,224) ImageNet-normalised -> (N, D)."""
    import torch

    model = torch.jit.load(str(model_path), map_location="cpu").eval()
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    out: list[np.ndarray] = []
    for start in range(0, len(files), 32):
        batch = []
        for path in files[start : start + 32]:
            with Image.open(path) as img:
                rgb = ImageOps.exif_transpose(img).convert("RGB").resize((224, 224))
            batch.append((np.asarray(rgb, dtype=np.float32) / 255.0 - mean) / std)
        x = torch.from_numpy(np.stack(batch).transpose(0, 3, 1, 2).copy())
        with torch.inference_mode():
            out.append(model(x).reshape(len(batch), -1).numpy())
    return np.concatenate(out)


def quality(args: argparse.Namespace) -> None:
    n_kodak, n_clothing = (5, 5) if args.quick else (25, 40)
    names = ["original", *TRANSFORMS]
    with tempfile.TemporaryDirectory() as tmp:
        records = build_corpus(Path(tmp), n_kodak, n_clothing)
        source = np.array([r["source"] for r in records])
        kind = np.array([r["kind"] for r in records])
        ids = np.arange(len(records), dtype=np.int64)
        rank = representative_rank(ids, [r["pixels"] for r in records], created=kind)

        start = time.perf_counter()
        hashes = ImageHashes.from_hashes(ids, [hash_bytes(r["path"].read_bytes()) for r in records])
        t_hash = time.perf_counter() - start

        rows: list[tuple[str, dict[str, float], float, int, int, str]] = []
        settings = [
            ("dataops pHash+dHash, mirrored (default)", DedupParams()),
            ("dataops pHash only, no mirror", DedupParams(joint_radius=None, flip=False)),
        ]
        for label, params in settings:
            start = time.perf_counter()
            grouping = group_pairs(hashes, find_pairs(hashes, params), rank, params)
            elapsed = time.perf_counter() - start
            metrics = pair_metrics(grouped_pairs(grouping.labels), source, kind, names)
            rows.append((label, *metrics, f"groups; hash {t_hash:.1f} s + group {elapsed:.2f} s"))

        version = imagededup_version()
        if version is None:
            print("imagededup is not installed: pip install --no-deps imagededup\n")
        else:
            phash = imagededup_phash()
            by_name = {r["path"].name: i for i, r in enumerate(records)}
            start = time.perf_counter()
            encodings = phash.encode_images(image_dir=tmp, num_enc_workers=2)
            dupes = phash.find_duplicates(
                encoding_map=encodings,
                max_distance_threshold=IMAGEDEDUP_THRESHOLD,
                num_dist_workers=2,
            )
            elapsed = time.perf_counter() - start
            found = {
                (min(by_name[a], by_name[b]), max(by_name[a], by_name[b]))
                for a, others in dupes.items()
                for b in others
            }
            metrics = pair_metrics(found, source, kind, names)
            rows.append(
                (
                    f"imagededup {version} PHash ≤ {IMAGEDEDUP_THRESHOLD}",
                    *metrics,
                    f"pairs; {elapsed:.1f} s",
                )
            )

        if args.model:
            start = time.perf_counter()
            vectors = embed(args.model, [r["path"] for r in records])
            found_pairs = EmbeddingIndex.build(ids, vectors).range_pairs(args.cosine)
            elapsed = time.perf_counter() - start
            found = set(zip(found_pairs.i.tolist(), found_pairs.j.tolist(), strict=True))
            metrics = pair_metrics(found, source, kind, names)
            rows.append(
                (f"dataops semantic, cosine ≥ {args.cosine}", *metrics, f"pairs; {elapsed:.1f} s")
            )

    print(
        f"### Quality: {n_kodak} Kodak + {n_clothing} hardest clothing photos, "
        f"{len(TRANSFORMS)} transforms each ({len(records)} files)\n"
    )
    print(
        "Recall: share of copies matched to their original. Precision: share of reported "
        "pairs (dataops: pairs inside a group) that come from one original.\n"
    )
    print(
        "| method | " + " | ".join(names[1:]) + " | recall (all) | precision | pairs "
        "| unrelated originals paired | unit; time |"
    )
    print("|---|" + "---:|" * (len(names) + 3) + "---|")
    for label, recall, precision, n_pairs, wrong, note in rows:
        overall = float(np.mean(list(recall.values())))
        cells = " | ".join(f"{recall[n]:.2f}" for n in names[1:])
        print(
            f"| {label} | {cells} | {overall:.3f} | {precision:.4f} | {n_pairs} | {wrong} | {note} |"
        )
    if not args.model:
        print(
            "| dataops semantic | "
            + " | ".join("—" for _ in names[1:])
            + " | not run (pass --model FILE.pt) | | | | |"
        )
    print()


def families(args: argparse.Namespace) -> dict[str, Any]:
    """Recall by edit family (see ``benchmarks/_dedup_recall.py``); returns the measured
    view-hash cost and geometric candidate rate the scale rows extrapolate from."""
    with tempfile.TemporaryDirectory() as tmp:
        corpus = _dedup_recall.build(Path(tmp), CORPUS, args.quick)
        runs = [
            _dedup_recall.run_dataops(corpus, None),
            _dedup_recall.run_dataops(corpus, StageParams(geometric=False)),
            _dedup_recall.run_dataops(corpus, StageParams()),
        ]
        baseline = _dedup_recall.run_imagededup(corpus, Path(tmp))
        if baseline is not None:
            runs.append(baseline)
        return _dedup_recall.report(runs, corpus)


# --------------------------------------------------------------------------- scale


def scale_worker(n: int, seed: int, geo_rate: float, geo_ms: float) -> dict[str, Any]:
    """The default dedup pipeline over ``n`` synthetic images, then ``INCREMENT`` new ones.

    The geometric checks are not run on synthetic codes (they need pixels): their time is
    the candidate rate and cost per check measured on real photos, times the image count.
    """
    import faiss

    total = n + INCREMENT
    rng = np.random.default_rng(seed + 1)
    phash = synthetic_codes(total, seed)
    one_bit = np.uint64(1) << rng.integers(0, 64, size=total, dtype=np.uint64)
    hashes = ImageHashes(
        ids=np.arange(total, dtype=np.int64),
        phash=phash,
        dhash=phash ^ one_bit,
        # A photo's mirror image looks like no other photo: an independent draw.
        phash_flip=synthetic_codes(total, seed + 2),
    )
    old = hashes.subset(np.arange(n))
    params = DedupParams()
    timings: dict[str, Any] = {"n": n, "threads": faiss.omp_get_max_threads()}

    clock = Clock(timings)
    with clock("build"):
        index = HashIndex.build(old.ids, old.phash, gpu=False)
    with clock("pairs"):
        direct = index.range_pairs(params.radius)
    assert old.phash_flip is not None
    with clock("mirror"):
        mirrored = index.mirror_pairs(old.phash_flip, params.radius)
    stage = StageParams()
    views = synthetic_views(phash, seed)
    old_views = views_of(views, np.arange(n))
    with clock("views"):
        hits = view_pairs(index, old, old_views, DedupParams(radius=stage.view_radius))
    with clock("group"):
        raw = Pairs.concat([direct, mirrored])
        confirmed = confirm_pairs(old, raw, params)
        known = Pairs.concat([confirmed, hits.confirmed])
        checks = closest_candidates(
            Pairs.concat([raw, hits.rejected]), known, stage.candidates_per_image
        )
        staged = StagedPairs.of(hash=confirmed, view=hits.confirmed)
        labels = group_staged(old, staged, np.arange(n), params)
    timings["candidates"] = len(direct) + len(mirrored) + len(hits.confirmed) + len(hits.rejected)
    timings["view_pairs"] = len(hits.confirmed)
    timings["synthetic_checks"] = len(checks)
    timings["groups"] = int(np.unique(labels[labels >= 0]).shape[0])
    timings["geo_s"] = n * geo_rate * geo_ms / 1000 / 2
    timings["geo_cpu"] = n * geo_rate * geo_ms / 1000
    grouping = group_pairs(old, confirmed, np.arange(n), params)

    group_of = np.concatenate([grouping.labels, np.full(INCREMENT, -1)])
    reps = {label: int(rep) for label, rep in enumerate(grouping.representatives)}
    with clock("increment"):
        new_pairs = find_new_pairs(index, hashes, hashes.ids[n:], params)
        new_hits = new_view_pairs(
            index, hashes, views, hashes.ids[n:], DedupParams(radius=stage.view_radius)
        )
        new_staged = StagedPairs.of(hash=new_pairs, view=new_hits.confirmed)
        plan = plan_merges(
            hashes,
            group_of,
            reps,
            new_staged.pairs,
            np.arange(total),
            params,
            stage_links(hashes, new_staged),
        )
    timings["increment_geo_s"] = INCREMENT * geo_rate * geo_ms / 1000 / 2
    timings["increment_pairs"] = len(new_pairs)
    timings["increment_changes"] = len(plan.merges) + len(plan.new_groups)
    timings["rss_mib"] = peak_rss_mib()
    return timings


def imagededup_worker(n: int, seed: int, method: str, cap_s: float) -> dict[str, Any]:
    """Time imagededup's search over ``n`` codes; extrapolate from a prefix of queries."""
    hash_eval, searchers = load_search()
    searcher = searchers[method]
    distance = imagededup_phash().hamming_distance
    codes = synthetic_codes(n, seed)
    encodings = {f"{i}.jpg": f"{int(c):016x}" for i, c in enumerate(codes)}
    t_build = 0.0
    if method == "bktree":
        start = time.perf_counter()
        searcher(encodings, distance)
        t_build = time.perf_counter() - start
    keys = list(encodings)
    q = min(n, 50)
    while True:
        queries = {k: encodings[k] for k in keys[:q]}
        start = time.perf_counter()
        hash_eval(
            encodings,
            queries,
            distance,
            verbose=False,
            threshold=RADIUS,
            search_method=method,
            num_dist_workers=2,
        )
        elapsed = time.perf_counter() - start
        if q == n or elapsed * 4 > cap_s:
            break
        q = min(n, q * 4)
    total = t_build + (elapsed - t_build) * n / q
    return {"n": n, "method": method, "queries_timed": q, "seconds": total, "measured": q == n}


def run_worker(*argv: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"worker {' '.join(argv)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# Geometric candidate rate and cost when the family section is skipped: the last measured
# values (2,320 real photos, default stages; see the family section).
GEO_RATE, GEO_MS, VIEW_MS = 0.223, 7.3, 6.7


def scale(args: argparse.Namespace, measured: dict[str, Any] | None = None) -> None:
    sizes = args.sizes or ([10_000, 20_000] if args.quick else [100_000, 1_000_000])
    geo_rate = measured["candidates_per_image"] if measured else GEO_RATE
    geo_ms = measured["candidate_ms"] if measured else GEO_MS
    view_ms = measured["view_ms"] if measured else VIEW_MS
    print(f"### Scale: synthetic 64-bit codes, default settings (pHash ≤ {RADIUS}), CPU\n")
    print(
        "All pairs: the pHash range search. Mirrored pass: each mirrored pHash against the "
        "images indexed before it (flip-robust matching, one orientation per pair). Views: "
        "6-7 view codes per image (synthetic, as far from their image's code as measured on "
        f"real photos) against the full-image index at pHash ≤ {StageParams().view_radius}. "
        "Confirm + group: dHash confirmation, the geometric candidates, guarded grouping. "
        f"Geometric: EXTRAPOLATED, {geo_rate:.3f} checks per image × {geo_ms:.1f} ms per check "
        "(both measured on real photos, decoding included) over 2 cores. "
        f"Incremental: {INCREMENT:,} new images against the index (pairs, mirrored "
        "pairs, views both ways, merge plan) + their extrapolated geometric checks + "
        f"computing their view hashes, EXTRAPOLATED at {view_ms:.1f} ms of CPU per image "
        "over 2 cores (`dedup run` decodes each image once for its views, the first time it "
        "sees it, and stores them; a full run over stored views does not pay it).\n"
    )
    print(
        "Each time is wall clock, then in brackets CPU seconds / faiss threads (the time on "
        "otherwise idle cores); the load average is read after each size.\n"
    )
    print(
        "| images | faiss threads | build | all pairs | mirrored pass | views | confirm + group "
        "| geometric (extrapolated) | full run | candidates | groups | incremental | peak RSS "
        "| load |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in sizes:
        r = run_worker("--scale-worker", str(n), "--geo", str(geo_rate), str(geo_ms))
        phases = ("build", "pairs", "mirror", "views", "group", "geo")
        r["full_s"] = sum(r[f"{p}_s"] for p in phases)
        r["full_cpu"] = sum(r[f"{p}_cpu"] for p in phases)
        views_s = INCREMENT * view_ms / 1000 / 2
        r["increment_s"] += r["increment_geo_s"] + views_s
        r["increment_cpu"] += 2 * (r["increment_geo_s"] + views_s)
        cells = {
            p: f"{_duration(r[f'{p}_s'])} ({_duration(r[f'{p}_cpu'] / r['threads'])})"
            for p in (*phases, "full", "increment")
        }
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"| {n:,} | {r['threads']} | {cells['build']} | {cells['pairs']} "
            f"| {cells['mirror']} | {cells['views']} | {cells['group']} | {cells['geo']} "
            f"| {cells['full']} | {r['candidates']:,} | {r['groups']:,} | {cells['increment']} "
            f"| {r['rss_mib']:.0f} MiB | {load} |"
        )
    print()
    if args.skip_baseline:
        return
    if imagededup_version() is None:
        print("imagededup not installed: baseline search not run\n")
        return
    base_sizes = [2_000, 5_000] if args.quick else [10_000, 100_000]
    cap = 20.0 if args.quick else 120.0
    print(
        f"imagededup {imagededup_version()} search over the same kind of codes "
        f"(`find_duplicates` internals, 2 worker processes), threshold {RADIUS}. "
        f"Runs longer than ~{cap:.0f} s are timed on a prefix of the queries and "
        "extrapolated linearly (BK-tree build time is measured, not scaled).\n"
    )
    print("| codes | method | all pairs | how |")
    print("|---:|---|---:|---|")
    for n in base_sizes:
        for method in ("bktree", "brute_force_cython"):
            r = run_worker("--imagededup-worker", str(n), method, str(cap))
            how = (
                "measured" if r["measured"] else f"extrapolated from {r['queries_timed']:,} queries"
            )
            print(f"| {n:,} | {method} | {_duration(r['seconds'])} | {how} |")
    print()


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument(
        "--model", type=Path, help="TorchScript embedding model for the semantic row"
    )
    parser.add_argument("--cosine", type=float, default=0.9, help="semantic match threshold")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument(
        "--skip-baseline", action="store_true", help="scale: dataops only, no imagededup search"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="scale: catalog sizes (default 100000 1000000)"
    )
    parser.add_argument("--scale-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--geo", type=float, nargs=2, default=(GEO_RATE, GEO_MS), help=argparse.SUPPRESS
    )
    parser.add_argument("--skip-families", action="store_true", help="no recall-by-family section")
    parser.add_argument("--imagededup-worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.scale_worker:
        print(json.dumps(scale_worker(args.scale_worker, args.seed, *args.geo)))
        return
    if args.imagededup_worker:
        n, method, cap = args.imagededup_worker
        print(json.dumps(imagededup_worker(int(n), args.seed, method, float(cap))))
        return
    if not args.skip_quality:
        quality(args)
    measured = None if args.skip_families else families(args)
    if not args.skip_scale:
        scale(args, measured)


if __name__ == "__main__":
    main()
