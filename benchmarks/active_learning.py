"""Active-learning simulation: do the selection strategies beat random at equal labeling budget?

Each seed splits the data into a test set and an unlabeled pool, labels a small random seed set,
then for every strategy repeats: train the tiny CNN on the labeled rows, score the pool, let the
strategy pick the next rows to label, reveal their labels. All strategies share the seed set,
the test set and the training seed, so per-seed differences come from the picks alone.

The clothing photos are tried first (the product's demo set); the simulation uses them only if
the tiny CNN can learn them well enough on a CPU in seconds, otherwise sklearn's bundled digits.
The probe that decides is printed and written with the results.

    .venv/bin/python benchmarks/active_learning.py [--dataset auto|clothing|digits]
"""

from __future__ import annotations

import argparse
import csv
import math
import multiprocessing
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataops.scoring import tinycnn
from dataops.scoring.inference import InputSpec, UriImageDataset
from dataops.selection.registry import select
from tests.support.corpus import CORPUS

if TYPE_CHECKING:
    import torch

RESULTS = Path(__file__).resolve().parent / "results"
STRATEGIES = ("random", "least_confidence", "margin", "entropy", "cluster_margin", "kcenter")
UNSURE = {"Not sure", "Skip", "Other"}
MIN_CLASS_SIZE = 40
LEARNABLE_ACCURACY = 0.70
MAX_TRAIN_SECONDS = 5.0
MIN_STEPS = 300


@dataclass
class Dataset:
    name: str
    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    spec: InputSpec


def load_clothing() -> Dataset:
    """Clothing photos with a confident label, in classes with at least MIN_CLASS_SIZE images."""
    with (CORPUS / "clothing-dataset-labels.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["label"] not in UNSURE]
    counts = Counter(r["label"] for r in rows)
    classes = sorted(c for c, n in counts.items() if n >= MIN_CLASS_SIZE)
    rows = [r for r in rows if r["label"] in classes]
    spec = InputSpec(size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    dataset = UriImageDataset([str(CORPUS / "clothing-dataset" / r["file"]) for r in rows], spec)
    items = [dataset[i] for i in range(len(dataset))]
    keep = [i for i, (_, pixels, _) in enumerate(items) if pixels is not None]
    x = np.stack([items[i][1] for i in keep])
    y = np.array([classes.index(rows[i]["label"]) for i in keep])
    return Dataset("clothing", x, y, classes, spec)


def load_digits() -> Dataset:
    """sklearn's 8x8 handwritten digits, scaled to 8-bit grayscale images."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    spec = InputSpec(size=(8, 8), mean=(0.3,), std=(0.4,), channels=1)
    images = [np.round(img * 255 / 16).astype(np.uint8) for img in bunch.images]
    x = tinycnn.prepare(images, spec)
    return Dataset("digits", x, bunch.target, [str(c) for c in range(10)], spec)


def split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    pool, test = train_test_split(rows, test_size=test_fraction, stratify=y, random_state=seed)
    return np.sort(pool), np.sort(test)


def epochs_for(n: int, batch_size: int = 32) -> int:
    """Enough epochs for MIN_STEPS optimizer steps, so tiny labeled sets are not undertrained."""
    return max(30, math.ceil(MIN_STEPS / math.ceil(n / batch_size)))


def fit(data: Dataset, rows: np.ndarray, seed: int) -> torch.nn.Module:
    return tinycnn.train(
        data.x[rows],
        data.y[rows],
        num_classes=len(data.classes),
        spec=data.spec,
        epochs=epochs_for(len(rows)),
        seed=seed,
    )


def accuracy(model: torch.nn.Module, data: Dataset, rows: np.ndarray) -> float:
    probs, _ = tinycnn.predict(model, data.x[rows])
    return float((probs.argmax(axis=1) == data.y[rows]).mean())


def probe(data: Dataset) -> dict[str, float | str]:
    """Accuracy of one training on the whole pool (the ceiling an AL run can approach).

    Training is single-threaded, so its CPU time is the wall time on an idle core and does not
    depend on what else the machine is running.
    """
    pool, test = split(data.y, 0.25, seed=0)
    start = time.process_time()
    model = fit(data, pool, seed=0)
    seconds = time.process_time() - start
    majority = Counter(data.y[test].tolist()).most_common(1)[0][1] / len(test)
    return {
        "dataset": data.name,
        "images": len(data.y),
        "classes": len(data.classes),
        "train_labels": len(pool),
        "accuracy": accuracy(model, data, test),
        "majority": majority,
        "train_seconds": seconds,
    }


def run_strategy(
    data: Dataset, strategy: str, seed: int, seed_size: int, batch: int, rounds: int
) -> list[float]:
    """Accuracy after the seed set and after each round of `batch` new labels."""
    pool, test = split(data.y, 0.3, seed)
    rng = np.random.default_rng(seed)
    labeled = np.sort(rng.choice(pool, size=seed_size, replace=False))
    curve = []
    for round_ in range(rounds + 1):
        model = fit(data, labeled, seed)
        curve.append(accuracy(model, data, test))
        if round_ == rounds:
            break
        unlabeled = np.setdiff1d(pool, labeled)
        probs, embeddings = tinycnn.predict(model, data.x[unlabeled])
        _, labeled_embeddings = tinycnn.predict(model, data.x[labeled])
        picks = select(
            strategy,
            batch,
            probs=probs,
            embeddings=embeddings,
            labeled_embeddings=labeled_embeddings,
            seed=seed * 1000 + round_,
        )
        labeled = np.sort(np.concatenate([labeled, unlabeled[picks]]))
    return curve


def labels_to_reach(curve: np.ndarray, target: float, label_counts: list[int]) -> int | None:
    reached = np.flatnonzero(curve >= target - 1e-12)
    return label_counts[int(reached[0])] if reached.size else None


def choose_dataset(requested: str) -> tuple[Dataset, list[dict[str, float | str]], str]:
    probes = []
    clothing = None
    if requested in ("auto", "clothing"):
        clothing = load_clothing()
        probes.append(probe(clothing))
    if requested == "clothing":
        assert clothing is not None
        return clothing, probes, "requested on the command line"
    digits = load_digits()
    probes.append(probe(digits))
    if requested == "digits":
        return digits, probes, "requested on the command line"
    result = probes[0]
    acc, secs = float(result["accuracy"]), float(result["train_seconds"])
    problems = []
    if acc < LEARNABLE_ACCURACY:
        problems.append(
            f"the tiny CNN reaches only {acc:.1%} on clothing with all {result['train_labels']} "
            f"pool labels (majority class {float(result['majority']):.1%}; need ≥ "
            f"{LEARNABLE_ACCURACY:.0%}), so strategy differences would drown in noise"
        )
    if secs > MAX_TRAIN_SECONDS:
        problems.append(
            f"one training takes {secs:.1f} CPU s (limit {MAX_TRAIN_SECONDS:.0f} s), too slow "
            "to retrain every round for every strategy and seed in a few minutes"
        )
    if not problems:
        assert clothing is not None
        return clothing, probes, f"clothing is learnable: {acc:.1%} in {secs:.1f} CPU s"
    reason = "; ".join(problems) + "; so the simulation uses sklearn digits"
    return digits, probes, reason


def fmt(values: np.ndarray) -> str:
    return f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.3f}"


def plot(label_counts: list[int], curves: dict[str, np.ndarray], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy, acc in curves.items():
        mean, sd = acc.mean(axis=0), acc.std(axis=0, ddof=1)
        ax.plot(label_counts, mean, marker="o", markersize=3, label=strategy)
        ax.fill_between(label_counts, mean - sd, mean + sd, alpha=0.15)
    ax.set_xlabel("labeled images")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["auto", "clothing", "digits"], default="auto")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seed-size", type=int, default=20)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()

    data, probes, reason = choose_dataset(args.dataset)
    probe_rows = [
        f"| {p['dataset']} | {p['images']} | {p['classes']} | {p['train_labels']} | "
        f"{float(p['accuracy']):.3f} | {float(p['majority']):.3f} | "
        f"{float(p['train_seconds']):.1f} |"
        for p in probes
    ]
    probe_table = [
        "| dataset | images | classes | train labels | test accuracy | majority class | "
        "train CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *probe_rows,
    ]
    print("Probe: one tiny-CNN training on the whole pool")
    print("\n".join(probe_table))
    print(f"\nDataset: {data.name} — {reason}\n")

    seeds = list(range(args.seeds))
    jobs = [(s, seed) for s in STRATEGIES for seed in seeds]
    # Spawn, not fork: the parent has already run torch, and a forked OpenMP pool deadlocks.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=spawn) as pool:
        futures = {
            job: pool.submit(
                run_strategy, data, job[0], job[1], args.seed_size, args.batch, args.rounds
            )
            for job in jobs
        }
        curves = {s: np.array([futures[(s, seed)].result() for seed in seeds]) for s in STRATEGIES}
    label_counts = [args.seed_size + r * args.batch for r in range(args.rounds + 1)]

    header = "| labels | " + " | ".join(STRATEGIES) + " |"
    table = [header, "|---:|" + "---:|" * len(STRATEGIES)]
    for r, n in enumerate(label_counts):
        table.append(f"| {n} | " + " | ".join(fmt(curves[s][:, r]) for s in STRATEGIES) + " |")

    target = float(curves["random"][:, -1].mean())
    budget = label_counts[-1]
    saved_rows = ["| strategy | final accuracy | labels to reach random's final | labels saved |"]
    saved_rows.append("|---|---:|---:|---:|")
    for s in STRATEGIES:
        mean_curve = curves[s].mean(axis=0)
        needed = labels_to_reach(mean_curve, target, label_counts)
        saved = (
            "not reached" if needed is None else f"{budget - needed} ({1 - needed / budget:.0%})"
        )
        saved_rows.append(
            f"| {s} | {fmt(curves[s][:, -1])} | {needed if needed is not None else '—'} | {saved} |"
        )

    elapsed = time.perf_counter() - started
    usage = os.times()
    cpu = usage.user + usage.system + usage.children_user + usage.children_system
    settings = (
        f"{data.name}: {len(data.y)} images, {len(data.classes)} classes, 30 % test split per "
        f"seed; seed set {args.seed_size} random labels, {args.rounds} rounds of {args.batch}; "
        f"{len(seeds)} seeds; tiny CNN retrained from scratch each round "
        f"(≥ {MIN_STEPS} Adam steps, cosine decay); cluster_margin: margin pool 10×batch, "
        f"{args.batch} average-linkage clusters; kcenter starts from the labeled set."
    )
    print(f"Test accuracy per round (mean ± sd over {len(seeds)} seeds)")
    print("\n".join(table))
    print(f"\nLabels needed to reach random's final accuracy ({target:.3f} at {budget} labels)")
    print("\n".join(saved_rows))
    print(f"\n{settings}\nTotal time {elapsed:.0f} s wall, {cpu:.0f} s CPU (all processes).")

    RESULTS.mkdir(parents=True, exist_ok=True)
    title = f"Active learning on {data.name} (tiny CNN, {len(seeds)} seeds, mean ± sd)"
    plot(label_counts, curves, title, RESULTS / "active_learning.png")
    report = [
        "# Active-learning simulation",
        "",
        f"Produced by `benchmarks/active_learning.py` in {elapsed:.0f} s wall, {cpu:.0f} s CPU "
        f"(all processes). {settings}",
        "",
        "## Which dataset",
        "",
        *probe_table,
        "",
        f"Used **{data.name}**: {reason}.",
        "",
        f"## Test accuracy per round (mean ± sd over {len(seeds)} seeds)",
        "",
        *table,
        "",
        f"## Labels needed to reach random's final accuracy ({target:.3f} at {budget} labels)",
        "",
        "First round whose mean accuracy over seeds reaches random's final mean.",
        "",
        *saved_rows,
        "",
        "![accuracy per round](active_learning.png)",
        "",
    ]
    (RESULTS / "active_learning.md").write_text("\n".join(report))


if __name__ == "__main__":
    main()
