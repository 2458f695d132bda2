"""Datasheets for manifests, after Gebru et al., "Datasheets for Datasets" (2018/2021).

Only the sections that a catalog can answer from its own records are filled in: motivation
(what was selected and why), composition (counts per split, class and slice attribute,
duplicate groups), collection (sources, where the bytes live), preprocessing (quarantine,
exclusions, PII minimisation), labeling (vendors, annotators, guideline versions, audits),
splits, uses, distribution, maintenance and known limitations. Every number is computed
from the frozen rows at creation time, so the datasheet describes exactly one content hash.

Stored as JSON (for tools) and Markdown (for people, :mod:`datasheet_markdown`) beside the
manifest body.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.audits.models import Audit
from dataops.catalog.models import Source
from dataops.config import get_settings
from dataops.labeling.models import Annotator, Queue, Vendor
from dataops.manifests.body import RowRecord
from dataops.manifests.splits import StratumBalance
from dataops.selection.models import Batch

FORMAT = "dataops.datasheet"
VERSION = 1
NO_CLASS = "(none)"
NO_VENDOR = "(no vendor recorded)"
MAX_SLICE_VALUES = 25
FLAG_Z = 2.0
SMALL_STRATUM = 10
NEVER_STORED = [
    "GPS position and other GPS tags",
    "camera body and lens serial numbers",
    "owner, artist and copyright names",
    "maker notes and embedded thumbnails",
]


@dataclass
class Frozen:
    """Rows of a new manifest (sha256 order) and what the datasheet needs about each."""

    rows: list[RowRecord] = field(default_factory=list)
    label_texts: list[str] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)
    attributes: list[dict[str, Any]] = field(default_factory=list)
    source_ids: list[int | None] = field(default_factory=list)
    annotator_ids: list[int | None] = field(default_factory=list)
    batch_ids: list[int | None] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)


@dataclass
class Facts:
    """Everything a datasheet states, gathered while the manifest is created."""

    name: str
    manifest_id: str
    seed: int
    spec: str
    selection: dict[str, Any]
    created_by: str | None
    created_at: datetime
    parent: str | None
    frozen: Frozen
    split_counts: dict[str, int]
    balance: list[StratumBalance] | None
    straddling: list[str]
    scope: dict[str, Any]
    catalog: dict[str, Any]
    body_key: str
    parquet_key: str


def label_classes(label: Mapping[str, Any] | None) -> list[str]:
    """Class names of a payload: its class, or the sorted distinct classes of its boxes."""
    if not label:
        return []
    if isinstance(label.get("class"), str):
        return [label["class"]]
    boxes = label.get("boxes")
    if isinstance(boxes, list):
        return sorted({b["class"] for b in boxes if isinstance(b, dict) and "class" in b})
    return []


def classes_per_row(rows: Sequence[RowRecord]) -> list[tuple[str, ...]]:
    """Class names of every row (``(none)`` when it has none); one tight loop for 1M rows."""
    out: list[tuple[str, ...]] = []
    for row in rows:
        name = row["label"].get("class")
        out.append(
            (name,) if isinstance(name, str) else tuple(label_classes(row["label"])) or (NO_CLASS,)
        )
    return out


def _nested(counter: Mapping[Any, int]) -> dict[str, Any]:
    """``{(a, b, c): n}`` -> ``{a: {b: {c: n}}}`` with every level sorted."""
    tree: dict[str, Any] = {}
    for key in sorted(counter):
        node = tree
        for part in key[:-1]:
            node = node.setdefault(part, {})
        node[key[-1]] = counter[key]
    return tree


def _expand(counter: Mapping[tuple[Any, ...], int]) -> Counter[tuple[str, ...]]:
    """Counts keyed by (..., class names) -> counts keyed by (..., one class name)."""
    out: Counter[tuple[str, ...]] = Counter()
    for (*head, names), n in counter.items():
        for name in names:
            out[(*head, name)] += n
    return out


def _slice_keys(attributes: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """Attributes to slice by, and those with too many distinct values to be useful."""
    values: dict[str, set[str]] = defaultdict(set)
    too_many: set[str] = set()
    for row in attributes:
        for key, value in row.items():
            if key not in too_many:
                seen = values[key]
                seen.add(str(value))
                if len(seen) > MAX_SLICE_VALUES:
                    too_many.add(key)
    return sorted(values.keys() - too_many), sorted(too_many)


def _composition(facts: Facts) -> dict[str, Any]:
    rows = facts.frozen.rows
    names_of = classes_per_row(rows)
    splits = [row["split"] for row in rows]
    classes = _expand(Counter(zip(splits, names_of, strict=True)))
    boxes: Counter[tuple[str, str]] = Counter()
    for row in rows:
        for box in row["label"].get("boxes") or []:
            boxes[row["split"], str(box.get("class"))] += 1
    slice_keys, too_many = _slice_keys(facts.frozen.attributes)
    slices: Counter[tuple[str, ...]] = Counter()
    for key in slice_keys:
        shown = [
            NO_CLASS if (value := a.get(key)) is None else str(value)
            for a in facts.frozen.attributes
        ]
        per_value = Counter(zip(shown, splits, names_of, strict=True))
        slices.update(_expand(Counter({(key, *k[:2], k[2]): n for k, n in per_value.items()})))
    groups = Counter(row["dup_group_id"] for row in rows if row["dup_group_id"] is not None)
    return {
        "rows": len(rows),
        "splits": facts.split_counts,
        "classes": _nested(classes),
        "boxes": _nested(boxes),
        "slices": _nested(slices),
        "slices_left_out": {
            key: f"more than {MAX_SLICE_VALUES} distinct values" for key in too_many
        },
        "duplicates": {
            "groups": len(groups),
            "groups_with_several_images": sum(1 for n in groups.values() if n > 1),
            "largest_group": max(groups.values(), default=0),
            "images_in_groups": sum(groups.values()),
            "groups_straddling_splits": len(facts.straddling),
        },
    }


def _by_id(session: Session, model: Any, ids: Iterable[int], *columns: Any) -> dict[int, Any]:
    wanted = sorted(set(ids))
    found: dict[int, Any] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for row in session.execute(select(model.id, *columns).where(model.id.in_(chunk))):
            found[row[0]] = row[1] if len(row) == 2 else tuple(row[1:])
    return found


def _labeling(session: Session, frozen: Frozen) -> dict[str, Any]:
    annotators = Counter(a for a in frozen.annotator_ids if a is not None)
    batches = Counter(b for b in frozen.batch_ids if b is not None)
    annotator_vendor = _by_id(session, Annotator, annotators, Annotator.vendor_id)
    batch_queue = _by_id(session, Batch, batches, Batch.queue_id)
    queue_vendor = _by_id(
        session, Queue, (q for q in batch_queue.values() if q is not None), Queue.vendor_id
    )
    per_pair = Counter(zip(frozen.annotator_ids, frozen.batch_ids, strict=True))
    vendor_ids: Counter[int | None] = Counter()
    for (annotator, batch), n in per_pair.items():
        vendor = annotator_vendor.get(annotator) if annotator is not None else None
        queue = batch_queue.get(batch) if batch is not None else None
        if vendor is None and queue is not None:
            vendor = queue_vendor.get(queue)
        vendor_ids[vendor] += n
    names = _by_id(session, Vendor, (v for v in vendor_ids if v is not None), Vendor.name)
    vendors = Counter({names[v] if v is not None else NO_VENDOR: n for v, n in vendor_ids.items()})
    guidelines = Counter(row["guideline_version"] or "(none recorded)" for row in frozen.rows)
    audits = [
        {
            "id": audit.id,
            "batch_id": audit.batch_id,
            "gate": audit.gate,
            "pass_rate": audit.pass_rate,
            "decision": audit.decision,
        }
        for audit in session.scalars(
            select(Audit).where(Audit.batch_id.in_(sorted(batches))).order_by(Audit.id)
        )
    ]
    return {
        "statuses": dict(sorted(Counter(frozen.statuses).items())),
        "vendors": dict(sorted(vendors.items())),
        "annotators": len(annotators),
        "labels_without_annotator": sum(1 for a in frozen.annotator_ids if a is None),
        "guidelines": dict(sorted(guidelines.items())),
        "batches": len(batches),
        "labels_outside_batches": sum(1 for b in frozen.batch_ids if b is None),
        "audits": audits,
    }


def _collection(session: Session, frozen: Frozen) -> dict[str, Any]:
    sources = Counter(frozen.source_ids)
    names = _by_id(session, Source, (s for s in sources if s is not None), Source.name)
    stored = sum(1 for row in frozen.rows if row["blob_key"])
    return {
        "sources": dict(
            sorted(
                (names[s] if s is not None else "(no source recorded)", n)
                for s, n in sources.items()
            )
        ),
        "copied_into_blob_store": stored,
        "referenced_at_original_location": len(frozen.rows) - stored,
    }


def _balance_rows(balance: Sequence[StratumBalance]) -> list[dict[str, Any]]:
    return [
        {
            "stratum": b.stratum,
            "groups": b.groups,
            "counts": b.counts,
            "expected": {k: round(v, 2) for k, v in b.expected.items()},
            "z": {k: round(v, 2) for k, v in b.z.items()},
            "flagged": b.max_abs_z > FLAG_Z or b.groups < SMALL_STRATUM,
        }
        for b in balance
    ]


def _limitations(facts: Facts, doc: dict[str, Any]) -> list[str]:
    notes = [
        "Duplicate groups come from perceptual hashes within a Hamming radius: near-duplicates "
        "beyond it (large crops, flips, heavy edits) are not grouped and may sit in different "
        "splits, and distinct images on similar backgrounds may be grouped together.",
        "Labels are frozen at creation: later relabels, audits or quarantines change nothing "
        "here; create a new manifest with this one as --parent to take them in.",
    ]
    splits = doc["splits"]
    if splits["stratify_by"]:
        flagged = [b["stratum"] for b in splits["balance"] if b["flagged"]]
        note = (
            f"Stratification by {splits['stratify_by']!r} holds in expectation only: every "
            "duplicate group draws its split independently, so small strata can be uneven."
        )
        if flagged:
            shown = ", ".join(flagged[:10]) + (" ..." if len(flagged) > 10 else "")
            note += (
                f" Strata off target (|z| > {FLAG_Z:g}) or under {SMALL_STRATUM} groups: {shown}."
            )
        notes.append(note)
    if facts.straddling:
        notes.append(
            f"{len(facts.straddling)} duplicate groups straddle splits: groups that the parent "
            "manifest had in different splits have since merged, and images keep their parent "
            "split so that no image ever moves between splits."
        )
    referenced = doc["collection"]["referenced_at_original_location"]
    if referenced:
        notes.append(
            f"{referenced} images are referenced at their original location, not copied into "
            "the blob store; if those files change, `dataops manifest verify` reports them."
        )
    if not doc["labeling"]["audits"]:
        notes.append(
            "No audit covers the batches these labels came from: they were accepted without a "
            "recorded agreement or gold check (e.g. imported with --accept)."
        )
    return notes


def catalog_sections(session: Session, frozen: Frozen) -> dict[str, Any]:
    """The sections that read the catalog (sources, vendors, audits), for :attr:`Facts.catalog`.

    Looked up before the rows are stored, so that :func:`build` needs no session and can run
    while the database loads them.
    """
    return {"collection": _collection(session, frozen), "labeling": _labeling(session, frozen)}


def build(facts: Facts) -> dict[str, Any]:
    """The datasheet document of a manifest being created."""
    selection = facts.selection
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "manifest": {
            "name": facts.name,
            "id": facts.manifest_id,
            "created_by": facts.created_by,
            "created_at": facts.created_at.isoformat(),
            "parent": facts.parent,
        },
        "motivation": {
            "purpose": (
                f"Train and evaluate models for the labeling task {selection['task']!r} on "
                "accepted labels, with splits that keep duplicate groups together."
            ),
            "selection": selection,
        },
        "composition": _composition(facts),
        "collection": facts.catalog["collection"],
        "preprocessing": {
            **facts.scope,
            "pii": {
                "exif_read": list(get_settings().ingest.exif_allowlist),
                "never_stored": NEVER_STORED,
            },
        },
        "labeling": facts.catalog["labeling"],
        "splits": {
            "seed": facts.seed,
            "spec": facts.spec,
            "rule": (
                "A whole duplicate group goes to one split, drawn from sha256(seed, group key); "
                "the group key is the duplicate group id, else the image's sha256. With a "
                "parent, its images keep their split and new members of its groups join them."
            ),
            "inherited_from_parent": selection["splits_inherited"],
            "joined_parent_group": selection["splits_joined"],
            "drawn": selection["splits_drawn"],
            "stratify_by": selection["stratify_by"],
            "balance": _balance_rows(facts.balance or []),
        },
        "uses": {
            "intended": (
                f"Training (train split) and model selection/evaluation (other splits) for "
                f"{selection['task']!r}; citing the exact data of a model card or paper by id."
            ),
            "not_intended": (
                "Measuring performance on populations the slices above do not cover; "
                "re-splitting the rows by hand (that breaks the duplicate-group rule)."
            ),
        },
        "distribution": {
            "id": facts.manifest_id,
            "body": facts.body_key,
            "parquet": facts.parquet_key,
            "verify": f"dataops manifest verify {facts.name}",
            "load": f"TorchDataset({facts.name!r}, 'train')",
        },
        "maintenance": {
            "immutable": (
                "Manifests and their rows are append-only: the database refuses UPDATE and "
                "DELETE. A change is a new manifest, ideally with this one as --parent."
            ),
            "parent": facts.parent,
        },
    }
    doc["limitations"] = _limitations(facts, doc)
    return doc


def to_json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False).encode()
