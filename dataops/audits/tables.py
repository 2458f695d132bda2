"""Agreement and gold tables of an audit: the numbers its report shows, per batch, annotator,
class and vendor. Agreement is computed on the overlap items' answers, gold accuracy on the
gold items' (see ``dataops.audits.run``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dataops.audits.decide import IOU_THRESHOLD, Decision, Item, Same

if TYPE_CHECKING:
    from dataops.audits.report import AnnotatorRow, ClassRow, Heatmap, VendorRow


@dataclass
class Agreement:
    summary: dict[str, Any]
    per_annotator: dict[str, dict[str, Any]]
    classes: list[ClassRow]
    pairwise: Heatmap | None = None
    confusion: Heatmap | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def empty_summary() -> dict[str, Any]:
    return {
        "n_items": 0,
        "n_annotators": 0,
        "percent_agreement": None,
        "cohen_kappa": None,
        "fleiss_kappa": None,
        "gwet_ac1": None,
        "krippendorff_alpha": None,
    }


def classification_agreement(
    items: Sequence[Item], decisions: Sequence[Decision], *, resamples: int, seed: int
) -> Agreement:
    from dataops.audits import agreement
    from dataops.audits.ratings import Ratings
    from dataops.audits.report import heatmap_from_confusion, heatmap_from_pairwise

    records = [
        (item.image.id, name, v.payload["class"])
        for item in items
        if len(item.answers) >= 2
        for name, v in item.answers.items()
    ]
    reference: dict[Hashable, Hashable] = {
        item.image.id: d.label["class"]
        for item, d in zip(items, decisions, strict=True)
        if d.audited and d.label is not None
    }
    referenced = [
        (item.image.id, name, v.payload["class"])
        for item in items
        if item.image.id in reference
        for name, v in item.answers.items()
    ]
    confusion = None
    if referenced:
        matrix = agreement.confusion_vs_reference(Ratings.from_records(referenced), reference)
        confusion = heatmap_from_confusion(
            matrix, "Reference vs given label", "reference (gold, adjudicated or majority)", "given"
        )
    if not records:
        return Agreement(empty_summary(), {}, [], None, confusion)
    ratings = Ratings.from_records(records)
    summary = agreement.agreement_summary(ratings, n_resamples=resamples, seed=seed)
    per_annotator = {
        str(row["annotator"]): {
            "n_shared_items": row["n_shared_items"],
            "agreement": row["agreement"],
            "mean_kappa": row["mean_kappa"],
        }
        for row in agreement.per_annotator_agreement(ratings)
    }
    classes: list[ClassRow] = [
        {
            "label": str(row["label"]),
            "n_ratings": row["n_ratings"],
            "specific_agreement": row["specific_agreement"],
            "alpha": row["alpha"],
        }
        for row in agreement.per_class_agreement(ratings)
    ]
    pairs = []
    for i, a in enumerate(ratings.annotators):
        for b in ratings.annotators[i + 1 :]:
            pair = agreement.confusion_matrix(ratings, a, b)
            if pair.matrix.sum():
                pairs.append(
                    {
                        "annotator_a": a,
                        "annotator_b": b,
                        "labels": [str(label) for label in pair.labels],
                        "matrix": pair.matrix.tolist(),
                    }
                )
    return Agreement(
        summary,
        per_annotator,
        classes,
        heatmap_from_pairwise(agreement.pairwise_kappa(ratings)),
        confusion,
        {"confusion_pairs": pairs},
    )


def detection_agreement(items: Sequence[Item]) -> Agreement:
    from dataops.audits.boxes import BoxAnnotations, box_agreement

    overlap = [item for item in items if len(item.answers) >= 2]
    if not overlap:
        return Agreement(
            {"n_items": 0, "n_annotators": 0, "mean_f1": None, "mean_alpha": None}, {}, []
        )
    records = [
        (item.image.id, name, box["class"], box["x"], box["y"], box["w"], box["h"])
        for item in overlap
        for name, v in item.answers.items()
        for box in v.payload["boxes"]
    ]
    labeled = [(item.image.id, name) for item in overlap for name in item.answers]
    result = box_agreement(
        BoxAnnotations.from_records(records, labeled=labeled), iou_threshold=IOU_THRESHOLD
    )
    shared = Counter(name for item in overlap for name in item.answers)
    f1: dict[str, list[float]] = {name: [] for name in shared}
    totals: dict[str, list[int]] = {}
    for pair in result["pairs"]:
        if pair["f1"] is not None:
            f1[pair["annotator_a"]].append(pair["f1"])
            f1[pair["annotator_b"]].append(pair["f1"])
        for row in pair["per_class"]:
            sums = totals.setdefault(str(row["label"]), [0, 0])
            sums[0] += row["n_boxes_a"] + row["n_boxes_b"]
            sums[1] += 2 * row["n_matched"]
    per_annotator = {
        name: {
            "n_shared_items": shared[name],
            "agreement": sum(values) / len(values) if values else None,
            "mean_kappa": None,
        }
        for name, values in f1.items()
    }
    # Specific agreement of boxes is the pooled F1: matched boxes over all boxes, both sides.
    classes: list[ClassRow] = [
        {"label": label, "n_ratings": n, "specific_agreement": matched / n if n else None}
        for label, (n, matched) in sorted(totals.items())
    ]
    summary = {
        "n_items": len(overlap),
        "n_annotators": result["n_annotators"],
        "mean_f1": result["mean_f1"],
        "mean_alpha": result["mean_alpha"],
    }
    return Agreement(summary, per_annotator, classes, extra={"boxes": result})


def gold_scores(items: Sequence[Item], same: Same, threshold: float) -> dict[str, dict[str, Any]]:
    """Per annotator gold accuracy with a Wilson interval; answers are scored match / miss."""
    from dataops.audits.gold import gold_accuracy
    from dataops.audits.ratings import Ratings

    records: list[tuple[Hashable, Hashable, Hashable]] = []
    for item in items:
        if item.gold is None:
            continue
        for name, v in item.answers.items():
            records.append(
                (item.image.id, name, "match" if same(v.payload, item.gold.payload) else "miss")
            )
    if not records:
        return {}
    ratings = Ratings.from_records(records)
    gold = {item: "match" for item in ratings.items}
    return {
        str(score.annotator): {
            "n_gold": score.n_gold,
            "n_correct": score.n_correct,
            "gold_accuracy": score.accuracy,
            "gold_ci": [score.ci_low, score.ci_high],
            "gold_passed": score.passed,
        }
        for score in gold_accuracy(ratings, gold, threshold=threshold)
    }


def annotator_rows(
    items: Sequence[Item],
    agreement: Agreement,
    gold: dict[str, dict[str, Any]],
    vendor_of: dict[str, str],
) -> list[AnnotatorRow]:
    answered = Counter(name for item in items for name in item.answers)
    rows: list[AnnotatorRow] = []
    for name in sorted(answered):
        shared = agreement.per_annotator.get(name, {})
        scores = gold.get(name, {})
        rows.append(
            {
                "annotator": name,
                "vendor": vendor_of[name],
                "n_items": answered[name],
                "n_shared_items": shared.get("n_shared_items", 0),
                "agreement": shared.get("agreement"),
                "mean_kappa": shared.get("mean_kappa"),
                "n_gold": scores.get("n_gold", 0),
                "gold_accuracy": scores.get("gold_accuracy"),
                "gold_passed": scores.get("gold_passed"),
            }
        )
    return rows


def vendor_rows(
    items: Sequence[Item],
    decisions: Sequence[Decision],
    annotators: Sequence[AnnotatorRow],
    gold: dict[str, dict[str, Any]],
) -> list[VendorRow]:
    """Vendor agreement is its annotators' agreement weighted by their shared items."""
    rows: list[VendorRow] = []
    for vendor in sorted({row["vendor"] for row in annotators}):
        members = [row for row in annotators if row["vendor"] == vendor]
        names = {row["annotator"] for row in members}
        touched = [
            d for item, d in zip(items, decisions, strict=True) if names & item.answers.keys()
        ]
        audited = [d for d in touched if d.audited]
        weighted: list[tuple[float, int]] = []
        for row in members:
            value = row.get("agreement")
            if value is not None:
                weighted.append((value, row.get("n_shared_items", 0)))
        weight = sum(w for _, w in weighted)
        n_gold = sum(gold.get(name, {}).get("n_gold", 0) for name in names)
        n_correct = sum(gold.get(name, {}).get("n_correct", 0) for name in names)
        rows.append(
            {
                "vendor": vendor,
                "n_annotators": len(members),
                "n_items": len(touched),
                "agreement": sum(a * w for a, w in weighted) / weight if weight else None,
                "gold_accuracy": n_correct / n_gold if n_gold else None,
                "pass_rate": sum(bool(d.passed) for d in audited) / len(audited)
                if audited
                else None,
            }
        )
    return rows
