"""An audit's report: its shape, the pieces taken from the audit, and its files.

``audits/<id>/report.json`` holds the whole document (metrics plus every item's answers and
outcome); ``audits/<id>/report.html`` is rendered by ``report_html`` with thumbnails of the
disputed items.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NotRequired, Required, TypedDict

if TYPE_CHECKING:
    from dataops.audits.agreement import Confusion, PairwiseKappa
    from dataops.audits.decide import Decision, Item
    from dataops.catalog.models import Image
    from dataops.storage import BlobStore

THUMBNAIL_EDGE = 240
# Thumbnails are embedded in the HTML; past this many the file stops being easy to open.
MAX_THUMBNAILS = 200


class GateResult(TypedDict):
    """Acceptance decision: a batch passes when pass_rate >= gate."""

    gate: float
    pass_rate: float
    n_items: int
    n_passed: int
    accepted: bool


class Heatmap(TypedDict):
    """A labelled matrix; None cells are drawn blank (e.g. annotators sharing no item)."""

    title: str
    row_labels: list[str]
    col_labels: list[str]
    values: list[list[float | None]]
    row_title: NotRequired[str]
    col_title: NotRequired[str]
    vmin: NotRequired[float]
    vmax: NotRequired[float]


class AnnotatorRow(TypedDict, total=False):
    annotator: Required[str]
    vendor: str
    n_items: int
    n_shared_items: int
    agreement: float | None
    mean_kappa: float | None
    n_gold: int
    gold_accuracy: float | None
    gold_passed: bool | None


class ClassRow(TypedDict, total=False):
    label: Required[str]
    n_ratings: int
    specific_agreement: float | None
    alpha: float | None


class VendorRow(TypedDict, total=False):
    vendor: Required[str]
    n_annotators: int
    n_items: int
    agreement: float | None
    gold_accuracy: float | None
    pass_rate: float | None


class DisputedItem(TypedDict):
    """A disputed item: ``item`` is the image's sha256 (the thumbnail key), and the file name,
    image id and Label Studio task say which item it is to a person."""

    item: str
    labels: dict[str, str]
    majority: NotRequired[str | None]
    reason: NotRequired[str]
    image_id: NotRequired[int]
    file_name: NotRequired[str]
    ls_task_id: NotRequired[int | None]
    ls_task_url: NotRequired[str | None]


OUTCOMES = ("accepted", "relabel", "released", "unanswered")


class OutcomeReport(TypedDict):
    """What the decision did with the items, and the rules that decided it."""

    policy: dict[str, Any]
    rule: str
    relabel_rule: str
    round: int
    items: dict[str, int]
    relabel_batch_id: int | None
    unresolved: list[str]
    unresolved_files: NotRequired[list[str]]


class AuditReport(TypedDict):
    """Everything the audit service knows about one audit, ready to render or store."""

    title: str
    summary: dict[str, Any]
    batch: NotRequired[str]
    generated_at: NotRequired[str]
    gate: NotRequired[GateResult]
    pairwise: NotRequired[Heatmap]
    confusion: NotRequired[Heatmap]
    annotators: NotRequired[list[AnnotatorRow]]
    classes: NotRequired[list[ClassRow]]
    vendors: NotRequired[list[VendorRow]]
    boxes: NotRequired[dict[str, Any]]
    disputed: NotRequired[list[DisputedItem]]
    outcome: NotRequired[OutcomeReport]
    consensus: NotRequired[dict[str, Any]]


def _cell(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def heatmap_from_pairwise(pairwise: PairwiseKappa, title: str = "Cohen's kappa") -> Heatmap:
    """Annotator x annotator kappa as a report heatmap."""
    labels = [str(a) for a in pairwise.annotators]
    return Heatmap(
        title=title,
        row_labels=labels,
        col_labels=labels,
        values=[[_cell(v) for v in row] for row in pairwise.kappa.tolist()],
        vmin=-1.0,
        vmax=1.0,
    )


def heatmap_from_confusion(
    confusion: Confusion,
    title: str = "Class confusion",
    row_title: str = "first annotator",
    col_title: str = "second annotator",
) -> Heatmap:
    """A confusion matrix as a report heatmap (counts)."""
    labels = [str(label) for label in confusion.labels]
    return Heatmap(
        title=title,
        row_labels=labels,
        col_labels=labels,
        values=[[float(v) for v in row] for row in confusion.matrix.tolist()],
        row_title=row_title,
        col_title=col_title,
    )


def disputed_entry(
    item: Item, decision: Decision, task_url: Callable[[int | None], str | None] | None = None
) -> DisputedItem:
    """``task_url`` turns the item's Label Studio task id into a link, where one is known."""
    from dataops.audits.decide import describe
    from dataops.audits.disputed import file_name

    task_id = item.batch_item.ls_task_id
    entry = DisputedItem(
        item=item.image.sha256,
        labels={name: describe(v.payload) for name, v in item.answers.items()},
        reason=decision.disputed or "",
        image_id=item.image.id,
        file_name=file_name(item.image.uri),
        ls_task_id=task_id,
        ls_task_url=task_url(task_id) if task_url is not None else None,
    )
    if decision.disputed == "tie":
        entry["majority"] = None
    return entry


def thumbnail(image: Image, store: BlobStore) -> bytes | None:
    """A small JPEG for the report, only from bytes that hash to the image's sha256; an
    unreadable or changed original just shows no picture."""
    from PIL import Image as PILImage

    from dataops.catalog.verify import read_verified
    from dataops.errors import DataopsError

    try:
        with PILImage.open(io.BytesIO(read_verified(image, store=store))) as img:
            img.draft("RGB", (THUMBNAIL_EDGE, THUMBNAIL_EDGE))
            small = img.convert("RGB")
            small.thumbnail((THUMBNAIL_EDGE, THUMBNAIL_EDGE))
            out = io.BytesIO()
            small.save(out, format="JPEG", quality=80)
            return out.getvalue()
    except (OSError, DataopsError, PILImage.DecompressionBombError, ValueError):
        return None


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(document: Mapping[str, Any]) -> str:
    # allow_nan=False: an undefined statistic must be null, never NaN (invalid JSON and JSONB).
    return json.dumps(document, default=_json_default, allow_nan=False, ensure_ascii=False)


def thumbnails(images: Sequence[Image], store: BlobStore) -> dict[str, bytes]:
    """Thumbnails of the first images that can be shown, by sha256."""
    out = {}
    for image in images[:MAX_THUMBNAILS]:
        picture = thumbnail(image, store)
        if picture is not None:
            out[image.sha256] = picture
    return out


def store_report(
    store: BlobStore, audit_id: int, document: Mapping[str, Any], html: str
) -> tuple[str, str]:
    """Write the JSON document and the HTML page; their blob keys (JSON, HTML)."""
    prefix = f"audits/{audit_id}"
    json_key = store.put_named(f"{prefix}/report.json", to_json(document).encode())
    html_key = store.put_named(f"{prefix}/report.html", html.encode("utf-8"))
    return json_key, html_key
