"""A manifest's datasheet as Markdown, for people: the same facts as the JSON document."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def _cell(value: Any) -> str:
    if value is None:
        text = ""
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = [
        "| " + " | ".join(map(_cell, columns)) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in rows]
    return [*lines, ""]


def _split_class_table(tree: Mapping[str, Mapping[str, int]], splits: Sequence[str]) -> list[str]:
    names = sorted({name for per in tree.values() for name in per})
    rows = []
    for name in names:
        counts = [tree.get(s, {}).get(name, 0) for s in splits]
        rows.append([name, *counts, sum(counts)])
    return _table(["class", *splits, "total"], rows)


def _mapping_table(header: Sequence[str], mapping: Mapping[str, Any]) -> list[str]:
    return _table(header, mapping.items()) if mapping else ["(none)", ""]


def _motivation(doc: Mapping[str, Any]) -> list[str]:
    m = doc["manifest"]
    return [
        f"# Datasheet: {m['name']}",
        "",
        f"- id: `{m['id']}`",
        f"- created by {m['created_by'] or 'unknown'} at {m['created_at']}",
        f"- parent: {m['parent'] or 'none'}",
        "",
        "## Motivation",
        "",
        doc["motivation"]["purpose"],
        "",
        "Selection rules:",
        "",
        *_mapping_table(["rule", "value"], doc["motivation"]["selection"]),
    ]


def _composition(comp: Mapping[str, Any]) -> list[str]:
    split_names = list(comp["splits"])
    out = [
        "## Composition",
        "",
        f"{comp['rows']} images.",
        "",
        *_table(["split", "images"], comp["splits"].items()),
        "### Images per class and split",
        "",
        *_split_class_table(comp["classes"], split_names),
    ]
    if comp["boxes"]:
        out += [
            "### Boxes per class and split",
            "",
            *_split_class_table(comp["boxes"], split_names),
        ]
    for key, per_value in comp["slices"].items():
        out += [f"### Slice: {key}", ""]
        rows = []
        for value, tree in per_value.items():
            names = sorted({name for per in tree.values() for name in per})
            rows += [
                [value, name, *(tree.get(s, {}).get(name, 0) for s in split_names)]
                for name in names
            ]
        out += _table([key, "class", *split_names], rows)
    for key, why in comp["slices_left_out"].items():
        out += [f"Attribute {key!r} is not sliced: {why}.", ""]
    return [
        *out,
        "### Duplicate groups",
        "",
        *_mapping_table(["statistic", "value"], comp["duplicates"]),
    ]


def _collection(doc: Mapping[str, Any]) -> list[str]:
    pre = doc["preprocessing"]
    return [
        "## Collection process",
        "",
        *_mapping_table(["source", "images"], doc["collection"]["sources"]),
        f"{doc['collection']['copied_into_blob_store']} images copied into the blob store, "
        f"{doc['collection']['referenced_at_original_location']} referenced at their "
        "original location.",
        "",
        "## Preprocessing, cleaning and exclusions",
        "",
        f"- images in scope: {pre['images_in_scope']}",
        f"- quarantined (left out): {pre['quarantined']}",
        f"- no accepted label for the task (left out): {pre['no_accepted_label']}",
        "",
        *(
            _table(["quarantine reason", "images"], pre["quarantine_reasons"].items())
            if pre["quarantine_reasons"]
            else []
        ),
        "### Personal data",
        "",
        "Only these EXIF tags were read at ingest: "
        + ", ".join(f"`{t}`" for t in pre["pii"]["exif_read"])
        + ". Never stored: "
        + "; ".join(pre["pii"]["never_stored"])
        + ".",
        "",
    ]


def _label_errors(errors: Mapping[str, Any] | None) -> list[str]:
    """Estimated label-error rate per class, from a label-quality run (confident learning)."""
    if not errors:
        return []
    return [
        f"### Estimated label errors (label-quality run {errors['run']}, {errors['source']})",
        "",
        *_table(
            ["class", "labels", "flagged", "estimated error rate"],
            (
                [name, c["labels"], c["issues"], f"{c['error_rate']:.1%}"]
                for name, c in errors["per_class"].items()
            ),
        ),
    ]


def _labeling(lab: Mapping[str, Any]) -> list[str]:
    return [
        "## Labeling",
        "",
        f"- annotators: {lab['annotators']} ({lab['labels_without_annotator']} labels have none)",
        f"- batches: {lab['batches']} ({lab['labels_outside_batches']} labels outside batches)",
        "",
        *_mapping_table(["label status", "images"], lab["statuses"]),
        *_mapping_table(["vendor", "labels"], lab["vendors"]),
        *_mapping_table(["guideline version", "labels"], lab["guidelines"]),
        *_label_errors(lab.get("label_errors")),
        "### Audits",
        "",
        *(
            _table(
                ["audit", "batch", "pass rate", "gate", "decision"],
                (
                    [a["id"], a["batch_id"], a["pass_rate"], a["gate"], a["decision"]]
                    for a in lab["audits"]
                ),
            )
            if lab["audits"]
            else ["(none)", ""]
        ),
    ]


def _splits(splits: Mapping[str, Any], split_names: Sequence[str]) -> list[str]:
    out = [
        "## Splits",
        "",
        f"- spec `{splits['spec']}`, seed {splits['seed']}",
        f"- {splits['rule']}",
        f"- inherited from the parent: {splits['inherited_from_parent']}; joined a parent "
        f"group: {splits['joined_parent_group']}; drawn: {splits['drawn']}",
        "",
    ]
    if splits["stratify_by"]:
        out += [
            f"### Balance by {splits['stratify_by']} (duplicate groups per split)",
            "",
            *_table(
                ["stratum", "groups", *(f"{s} (z)" for s in split_names), "flagged"],
                (
                    [
                        b["stratum"],
                        b["groups"],
                        *(f"{b['counts'][s]} ({b['z'][s]:+.2f})" for s in split_names),
                        "yes" if b["flagged"] else "",
                    ]
                    for b in splits["balance"]
                ),
            ),
        ]
    return out


def _use_and_upkeep(doc: Mapping[str, Any]) -> list[str]:
    dist, maint = doc["distribution"], doc["maintenance"]
    return [
        "## Uses",
        "",
        f"- intended: {doc['uses']['intended']}",
        f"- not intended: {doc['uses']['not_intended']}",
        "",
        "## Distribution",
        "",
        f"- body: `{dist['body']}`; Parquet: `{dist['parquet']}`",
        f"- verify: `{dist['verify']}`",
        f"- load: `{dist['load']}`",
        "",
        "## Maintenance",
        "",
        maint["immutable"],
        "",
        "## Known limitations",
        "",
        *(f"- {note}" for note in doc["limitations"]),
        "",
    ]


def to_markdown(doc: Mapping[str, Any]) -> str:
    """The datasheet for people; same facts as the JSON."""
    comp = doc["composition"]
    out = [
        *_motivation(doc),
        *_composition(comp),
        *_collection(doc),
        *_labeling(doc["labeling"]),
        *_splits(doc["splits"], list(comp["splits"])),
        *_use_and_upkeep(doc),
    ]
    return "\n".join(out)
