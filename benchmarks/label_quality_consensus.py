"""Consensus benchmark: 5 simulated annotators on sklearn digits, through dataops's audit.

1,797 digit images (8x8, written as PNGs and ingested into a fresh SQLite catalog). Five
annotators of accuracy 0.95 / 0.9 / 0.8 / 0.7 / 0.6 answer each image 1-3 times (distinct
annotators, a wrong answer is a uniformly drawn wrong class). The model's probabilities are
out-of-sample: a scikit-learn logistic regression on the pixels, 5-fold, stored as a model
version's predictions. One batch holds every image; a queue with ``accept_rule=consensus``
audits it (``dataops.audits.run.run_audit``), so the consensus and annotator quality are the
audit's own. Beside it: majority vote (ties broken at random), the share of items the audit
accepted (the rest, whose answers all miss the consensus, go to relabel) and the accuracy of
their accepted labels, and cleanlab called directly on the same answers (the anchor; it must
agree).

Pass: consensus accuracy >= 0.95 and Spearman(annotator quality, true accuracy) >= 0.9.

    python benchmarks/label_quality_consensus.py [--seeds 0 1 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ACCURACIES = {"a95": 0.95, "a90": 0.9, "a80": 0.8, "a70": 0.7, "a60": 0.6}
CLASSES = [str(d) for d in range(10)]


def simulate(truth: NDArray[Any], seed: int) -> list[dict[str, str]]:
    """Per image, 1-3 distinct annotators' answers (annotator -> class)."""
    rng = np.random.default_rng(seed)
    names = list(ACCURACIES)
    answers: list[dict[str, str]] = []
    for t in truth.tolist():
        chosen = rng.choice(len(names), size=int(rng.integers(1, 4)), replace=False)
        given: dict[str, str] = {}
        for j in chosen.tolist():
            name = names[j]
            if rng.random() < ACCURACIES[name]:
                given[name] = str(t)
            else:
                given[name] = str((t + int(rng.integers(1, 10))) % 10)
        answers.append(given)
    return answers


def out_of_sample_probs(x: NDArray[Any], y: NDArray[Any], seed: int) -> NDArray[Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    model = LogisticRegression(max_iter=2000)
    return np.asarray(cross_val_predict(model, x / 16.0, y, cv=folds, method="predict_proba"))


def majority(answers: list[dict[str, str]], seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for given in answers:
        values, counts = np.unique(list(given.values()), return_counts=True)
        top = values[counts == counts.max()]
        out.append(str(top[int(rng.integers(len(top)))]))
    return out


def _png(pixels: NDArray[Any], index: int) -> bytes:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    image = Image.fromarray((pixels.reshape(8, 8) * 15.9375).astype(np.uint8)).resize((32, 32))
    info = PngInfo()
    info.add_text("sample", str(index))  # identical digits stay separate images
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def _catalog(folder: Path, x: NDArray[Any]) -> list[int]:
    """Ingest the digits as PNGs; image id per sample."""
    from sqlalchemy import select

    from dataops.catalog.ingest import ingest
    from dataops.catalog.models import Image
    from dataops.db import session_scope

    images = folder / "digits"
    images.mkdir()
    for i, pixels in enumerate(x):
        (images / f"{i:04d}.png").write_bytes(_png(pixels, i))
    ingest([str(images)], transaction=session_scope)
    with session_scope() as s:
        by_name = {Path(uri).name: i for i, uri in s.execute(select(Image.id, Image.uri))}
    return [by_name[f"{i:04d}.png"] for i in range(len(x))]


def _world(ids: list[int], answers: list[dict[str, str]], probs: NDArray[Any]) -> int:
    """Annotators, a consensus queue, one batch of every image, the answers and the model."""
    from dataops.db import session_scope
    from dataops.labeling.models import Annotator, Guideline, LabelVersion, Queue, Vendor
    from dataops.scoring.models import ModelVersion, Prediction
    from dataops.selection.models import Batch, BatchItem

    with session_scope() as s:
        vendor = Vendor(name="sim")
        guideline = Guideline(
            name="digits",
            version=1,
            sha256="d" * 64,
            kind="classification",
            classes=CLASSES,
            body="# digits",
            label_config="<View/>",
        )
        s.add_all([vendor, guideline])
        s.flush()
        people = {n: Annotator(name=n, vendor_id=vendor.id) for n in ACCURACIES}
        queue = Queue(
            name="digits", vendor_id=vendor.id, guideline_id=guideline.id, accept_rule="consensus"
        )
        mv = ModelVersion(
            name="digits-logreg-5fold",
            version=1,
            sha256="e" * 64,
            blob_key="models/none",
            classes=CLASSES,
            input_spec={},
            is_current=True,
        )
        s.add_all([*people.values(), queue, mv])
        s.flush()
        batch = Batch(
            purpose="active_learning", strategy="random", queue_id=queue.id, status="delivered"
        )
        s.add(batch)
        s.flush()
        for pos, (image_id, given, p) in enumerate(zip(ids, answers, probs, strict=True)):
            s.add(
                BatchItem(
                    batch_id=batch.id,
                    image_id=image_id,
                    item_key=f"d{image_id}",
                    position=pos,
                    is_overlap=len(given) > 1,
                    required_annotations=len(given),
                )
            )
            top = np.sort(p)[::-1]
            s.add(
                Prediction(
                    model_version_id=mv.id,
                    image_id=image_id,
                    probs=[float(v) for v in p],
                    predicted_class=CLASSES[int(np.argmax(p))],
                    predicted_score=float(top[0]),
                    least_confidence=float(1 - top[0]),
                    margin=float(top[0] - top[1]),
                    entropy=float(-(p * np.log(np.clip(p, 1e-12, 1))).sum()),
                )
            )
            for name, cls in given.items():
                key = f"{image_id}-{name}"
                s.add(
                    LabelVersion(
                        image_id=image_id,
                        annotator_id=people[name].id,
                        batch_id=batch.id,
                        payload={"class": cls},
                        source="csv",
                        source_id=key,
                        source_key=f"csv:{key}:-",
                        status="submitted",
                    )
                )
        return batch.id


def _audit(batch_id: int) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    from dataops.audits.run import run_audit
    from dataops.audits.schemas import AuditRequest
    from dataops.db import session_scope
    from dataops.storage import get_store

    start = time.perf_counter()
    with session_scope() as s:
        audit = run_audit(s, AuditRequest(batch_id=batch_id, gate=0.0, resamples=0))
        metrics, key = audit.metrics, audit.report_json_key
    seconds = time.perf_counter() - start
    assert key is not None
    return metrics, json.loads(get_store().get(key))["items"], seconds


def consensus_row(seed: int) -> dict[str, Any]:
    """One seed of the 5-annotator simulation, through a fresh catalog and the audit."""
    from scipy.stats import spearmanr
    from sklearn.datasets import load_digits

    from dataops.quality.consensus import crowdlab

    x, y = load_digits(return_X_y=True)
    answers = simulate(y, seed)
    probs = out_of_sample_probs(x, y, seed)
    with tempfile.TemporaryDirectory() as tmp:
        _fresh_catalog(Path(tmp))
        ids = _catalog(Path(tmp), x)
        metrics, items, seconds = _audit(_world(ids, answers, probs))
    truth = [str(t) for t in y.tolist()]
    by_image = {row["image_id"]: row for row in items}
    rows = [by_image[i] for i in ids]
    consensus = [r["consensus"]["label"] if r["consensus"] else None for r in rows]
    accepted = [
        (r["label"]["class"], t)
        for r, t in zip(rows, truth, strict=True)
        if r["outcome"] == "accepted"
    ]
    skills = {a["annotator"]: round(a["quality"], 4) for a in metrics["consensus"]["annotators"]}
    names = list(ACCURACIES)
    rho = float(spearmanr([skills[n] for n in names], [ACCURACIES[n] for n in names])[0])
    direct, _ = crowdlab(
        dict(enumerate(answers)), dict(enumerate(probs.tolist())), CLASSES
    )  # cleanlab on the same inputs, outside the catalog
    return {
        "dataset": "digits-5-annotators",
        "method": "dataops-audit-crowdlab",
        "seed": seed,
        "images": len(ids),
        "answers": sum(len(a) for a in answers),
        "model_accuracy": _acc([CLASSES[int(i)] for i in probs.argmax(1)], truth),
        "majority_accuracy": _acc(majority(answers, seed), truth),
        "consensus_accuracy": _acc(consensus, truth),
        "audit_accepted_share": round(len(accepted) / len(rows), 4),
        "audit_accepted_accuracy": _acc([a for a, _ in accepted], [t for _, t in accepted]),
        "direct_cleanlab_accuracy": _acc([direct[i].label for i in range(len(y))], truth),
        "annotator_quality": skills,
        "spearman": round(rho, 4),
        "accept_rule_applied": metrics["consensus"]["applied"],
        "audit_seconds": round(seconds, 2),
    }


def _acc(labels: Sequence[str | None], truth: Sequence[str]) -> float:
    return round(sum(a == b for a, b in zip(labels, truth, strict=True)) / max(1, len(truth)), 4)


def _fresh_catalog(folder: Path) -> None:
    from dataops import migrate
    from dataops.config import reset_settings
    from dataops.db import dispose_engines
    from dataops.storage import get_store

    dispose_engines()
    os.environ["DATAOPS_DATA_DIR"] = str(folder / "data")
    os.environ.pop("DATAOPS_DATABASE_URL", None)
    reset_settings()
    get_store.cache_clear()
    migrate.upgrade()


def consensus_rows(seeds: list[int]) -> list[dict[str, Any]]:
    """One row per seed; each seed gets its own fresh catalog."""
    return [consensus_row(seed) for seed in seeds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = consensus_rows(args.seeds)
    text = json.dumps(rows, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    ok = all(r["consensus_accuracy"] >= 0.95 and r["spearman"] >= 0.9 for r in rows)
    print("PASS" if ok else "FAIL", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
