"""Audit benchmark: agreement on 100k items and box agreement on 10k images.

Each case runs in its own Python process so that the peak RSS (``ru_maxrss``) belongs to that
case alone. Every process imports SciPy, scikit-learn and statsmodels before its clock starts;
the "baseline" row times those imports and shows the RSS they cost on their own. Data are
synthetic and seeded: 3 annotators, 10 classes with a skewed class mix, each annotator right
with probability 0.893 and otherwise picking one of the 9 wrong classes, which gives ~80 %
pairwise agreement; boxes: ~8 per image, the second annotator jitters every box, misses 5 %
and adds 5 % spurious ones.

    python benchmarks/audit.py [--items 100000] [--resamples 1000] [--images 10000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CASES = ("baseline", "summary", "tables", "boxes")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ratings(n_items: int, seed: int) -> Any:
    from dataops.audits.ratings import Ratings

    rng = np.random.default_rng(seed)
    n_classes, n_annotators, right = 10, 3, 0.893
    prior = 1 / np.arange(1, n_classes + 1)
    truth = rng.choice(n_classes, size=n_items, p=prior / prior.sum())
    records: list[tuple[int, str, int]] = []
    for a in range(n_annotators):
        wrong = (truth + rng.integers(1, n_classes, n_items)) % n_classes
        labels = np.where(rng.random(n_items) < right, truth, wrong)
        name = f"annotator-{a}"
        records.extend((i, name, lab) for i, lab in enumerate(labels.tolist()))
    return Ratings.from_records(records)


def _boxes(n_images: int, seed: int) -> Any:
    from dataops.audits.boxes import BoxAnnotations

    rng = np.random.default_rng(seed)
    counts = rng.poisson(8, n_images)
    n = int(counts.sum())
    image = np.repeat(np.arange(n_images), counts)
    cls = rng.integers(0, 10, n)
    xy = rng.random((n, 2)) * 0.8
    wh = 0.04 + rng.random((n, 2)) * 0.16
    kept = rng.random(n) >= 0.05
    jitter = rng.normal(0, 0.1, (n, 4)) * np.concatenate([wh, wh], axis=1)
    b = np.concatenate([xy, wh], axis=1) + jitter
    b[:, 2:] = np.maximum(b[:, 2:], 0.01)
    extra = rng.random(n) < 0.05
    records = [
        (i, "a", c, x, y, w, h)
        for i, c, (x, y, w, h) in zip(
            image.tolist(), cls.tolist(), np.concatenate([xy, wh], 1).tolist(), strict=True
        )
    ]
    records += [
        (i, "b", c, x, y, w, h)
        for i, c, (x, y, w, h) in zip(
            image[kept].tolist(), cls[kept].tolist(), b[kept].tolist(), strict=True
        )
    ]
    spurious = np.concatenate([rng.random((int(extra.sum()), 2)) * 0.8, wh[extra]], axis=1)
    records += [
        (i, "b", c, x, y, w, h)
        for i, c, (x, y, w, h) in zip(
            image[extra].tolist(), cls[extra].tolist(), spurious.tolist(), strict=True
        )
    ]
    labeled = [(i, a) for i in range(n_images) for a in ("a", "b")]
    return BoxAnnotations.from_records(records, labeled=labeled)


def run_case(case: str, args: argparse.Namespace) -> dict[str, Any]:
    from dataops.audits import agreement, boxes, gold

    started = time.perf_counter()
    import scipy.optimize
    import scipy.sparse
    import sklearn.metrics
    import statsmodels.stats.inter_rater

    imported = (scipy.optimize, scipy.sparse, sklearn.metrics, statsmodels.stats.inter_rater)
    if case == "baseline":
        return {
            "what": "baseline: import SciPy, scikit-learn, statsmodels (not in other rows)",
            "seconds": time.perf_counter() - started,
            "result": f"{len(imported)} modules",
        }
    if case in ("summary", "tables"):
        ratings = _ratings(args.items, args.seed)
        start = time.perf_counter()
        if case == "summary":
            out = agreement.agreement_summary(ratings, n_resamples=args.resamples, seed=args.seed)
            seconds = time.perf_counter() - start
            ci = out["ci"]["krippendorff_alpha"]
            result = (
                f"pct {out['percent_agreement']:.3f}, fleiss {out['fleiss_kappa']:.3f}, "
                f"alpha {out['krippendorff_alpha']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
            )
            what = (
                f"{args.items:,} items x 3 annotators x 10 classes: summary + "
                f"{args.resamples:,}-resample bootstrap"
            )
        else:
            agreement.pairwise_kappa(ratings)
            agreement.per_annotator_agreement(ratings)
            agreement.per_class_agreement(ratings)
            votes = gold.majority_vote(ratings)
            seconds = time.perf_counter() - start
            tied = sum(v.tied for v in votes.values())
            result = f"{tied:,} tied items"
            what = f"{args.items:,} items: pairwise, per-annotator, per-class, majority vote"
        return {"what": what, "seconds": seconds, "result": result}
    data = _boxes(args.images, args.seed)
    start = time.perf_counter()
    out = boxes.box_agreement(data)
    seconds = time.perf_counter() - start
    pair = out["pairs"][0]
    return {
        "what": f"{args.images:,} images x 2 annotators, {len(data.xywh):,} boxes: box agreement",
        "seconds": seconds,
        "result": (
            f"F1 {pair['f1']:.3f}, median IoU {pair['iou']['p50']:.3f}, alpha {pair['alpha']:.3f}"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        row = run_case(args.case, args)
        row["peak_rss_mib"] = _peak_rss_mib()
        print(json.dumps(row))
        return
    forwarded = [f"--items={args.items}", f"--resamples={args.resamples}"]
    forwarded += [f"--images={args.images}", f"--seed={args.seed}"]
    print("| case | time (s) | peak RSS (MiB) | result |")
    print("|---|---:|---:|---|")
    for case in CASES:
        done = subprocess.run(
            [sys.executable, __file__, f"--case={case}", *forwarded],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {row['what']} | {row['seconds']:.2f} | {row['peak_rss_mib']:.0f} | "
            f"{row['result']} |"
        )


if __name__ == "__main__":
    main()
