"""What each number of an audit means, in plain words.

One dictionary, so the self-contained HTML report and the console say the same thing beside
the same metric. Keys are the names the audit's metrics use (``summary`` keys, gate fields and
table columns).
"""

from __future__ import annotations

from typing import Any, TypedDict

LABELS: dict[str, str] = {
    "pass_rate": "Pass rate",
    "gate": "Gate",
    "percent_agreement": "Percent agreement",
    "cohen_kappa": "Cohen's kappa",
    "weighted_kappa": "Weighted kappa",
    "fleiss_kappa": "Fleiss' kappa",
    "gwet_ac1": "Gwet's AC1",
    "krippendorff_alpha": "Krippendorff's alpha",
    "agreement": "Agreement",
    "mean_kappa": "Mean kappa",
    "gold_accuracy": "Gold accuracy",
    "specific_agreement": "Specific agreement",
    "alpha": "Alpha",
    "quality": "Estimated quality",
    "agreement_with_consensus": "Agreement with consensus",
}

EXPLANATIONS: dict[str, str] = {
    "pass_rate": (
        "Share of audited items whose answers all match their reference: the gold answer, an "
        "adjudicated answer, or else each other (unanimous). A tie never passes."
    ),
    "gate": (
        "The pass rate the batch needs to be accepted. Below it the batch is rejected and the "
        "queue's on-reject policy decides what is relabeled."
    ),
    "percent_agreement": (
        "How often two annotators who labeled the same item gave the same answer, averaged "
        "over overlap items. It does not correct for agreeing by chance."
    ),
    "cohen_kappa": (
        "Agreement between exactly two annotators, corrected for the agreement expected by "
        "chance: 1 is perfect, 0 is no better than chance, below 0 is worse than chance."
    ),
    "weighted_kappa": (
        "Kappa for ordered labels: answers one step apart count as partly agreeing, so near "
        "misses cost less than far ones."
    ),
    "fleiss_kappa": (
        "Chance-corrected agreement for any number of annotators per item; 0.6 to 0.8 is "
        "usually read as substantial, above 0.8 as almost perfect."
    ),
    "gwet_ac1": (
        "Chance-corrected agreement that stays stable when one class dominates (where kappa "
        "can look low although almost every answer agrees)."
    ),
    "krippendorff_alpha": (
        "Chance-corrected agreement that allows missing answers and any number of annotators; "
        "0.8 or more is the usual bar for data you rely on, below 0.667 is doubtful."
    ),
    "agreement": (
        "Share of this annotator's answers on overlap items that match the other annotators' "
        "answers on the same items."
    ),
    "mean_kappa": "Average Cohen's kappa of this annotator against each other annotator.",
    "gold_accuracy": (
        "Share of gold (known-answer) items this annotator answered correctly. Staff only: it "
        "would tell vendors which items were gold."
    ),
    "specific_agreement": (
        "For one class: how often, when one annotator chose it, another annotator of the same "
        "item chose it too."
    ),
    "alpha": "Krippendorff's alpha for this class against all others (one versus rest).",
    "quality": (
        "The annotator's estimated quality from the model's predictions and the other answers "
        "(CROWDLAB): 1 is best."
    ),
    "agreement_with_consensus": (
        "Share of this annotator's answers that match the consensus label of the item."
    ),
}

SUMMARY_KEYS = (
    "percent_agreement",
    "cohen_kappa",
    "weighted_kappa",
    "fleiss_kappa",
    "gwet_ac1",
    "krippendorff_alpha",
)


def explain(key: str) -> str | None:
    """The plain-language meaning of a metric, or None for a number that needs none."""
    return EXPLANATIONS.get(key)


class MetricRow(TypedDict):
    key: str
    label: str
    value: float | None
    se: float | None
    t_interval: list[float] | None
    ci: list[float] | None
    explanation: str


def summary_rows(summary: dict[str, Any]) -> list[MetricRow]:
    """The agreement summary's metrics, each with its intervals and its explanation."""
    ci = summary.get("ci") or {}
    analytic = summary.get("standard_errors") or {}
    rows = []
    for key in SUMMARY_KEYS:
        if key not in summary:
            continue
        label = LABELS[key]
        if key == "weighted_kappa" and summary.get("weights"):
            label += f" ({summary['weights']})"
        rows.append(
            MetricRow(
                key=key,
                label=label,
                value=summary.get(key),
                se=(analytic.get(key) or {}).get("se"),
                t_interval=(analytic.get(key) or {}).get("ci"),
                ci=ci.get(key),
                explanation=EXPLANATIONS[key],
            )
        )
    return rows
