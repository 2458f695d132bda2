"""Self-contained HTML audit report.

One file that an auditor can open offline or attach to a ticket: CSS is inline, heatmaps are
PNG data URIs drawn with matplotlib's Agg canvas, thumbnails are embedded the same way.
Every string that came from users (annotator names, labels, item ids) is HTML-escaped, and
matplotlib's mathtext is off for them, so a label like ``$x$`` or ``<script>`` renders as
typed.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from dataops.audits.report import (
        AuditReport,
        DisputedItem,
        GateResult,
        Heatmap,
        OutcomeReport,
    )

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1f2933;background:#fff;padding:0 1rem}
h1{margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #d9e2ec;padding-bottom:.3rem}
.meta{color:#52606d}
.decision{font-size:3rem;font-weight:800;letter-spacing:.05em;padding:1rem 1.5rem;
border-radius:.5rem;margin:1rem 0;display:inline-block}
.accepted{background:#e3f9e5;color:#0e5814;border:3px solid #31a24c}
.rejected{background:#ffe3e3;color:#8a041a;border:3px solid #e12d39}
.nogate{background:#f0f4f8;color:#334e68;border:3px solid #9fb3c8}
.gate-detail{font-size:1.1rem;color:#334e68}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d9e2ec;padding:.3rem .6rem;text-align:left}
th{background:#f0f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.fail{background:#ffe3e3;color:#8a041a;font-weight:600}
td.pass{background:#e3f9e5;color:#0e5814}
.figures{display:flex;flex-wrap:wrap;gap:1rem}.figures img{max-width:100%;height:auto}
.disputed{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:1rem}
.card{border:1px solid #d9e2ec;border-radius:.4rem;padding:.5rem;font-size:.85rem}
.card img{width:100%;height:160px;object-fit:contain;background:#f0f4f8}
.card .id{font-family:ui-monospace,monospace;word-break:break-all}
details pre{background:#f0f4f8;padding:1rem;overflow:auto;font-size:.8rem}
"""

_MIME = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def _image_mime(data: bytes) -> str | None:
    """The image type from its magic bytes; None for anything we would not embed."""
    for magic, mime in _MIME:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _short(label: str, limit: int = 28) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _fmt(value: object) -> tuple[str, str]:
    """Cell text and CSS class."""
    if value is None:
        return "–", "num"
    if isinstance(value, bool):
        return ("pass", "pass") if value else ("fail", "fail")
    if isinstance(value, int):
        return f"{value:,}", "num"
    if isinstance(value, float):
        return ("–", "num") if not math.isfinite(value) else (f"{value:.3f}", "num")
    if isinstance(value, list | tuple) and len(value) == 2:
        low, high = value
        return f"[{_fmt(low)[0]}, {_fmt(high)[0]}]", "num"
    return _esc(value), ""


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = ()) -> str:
    if not rows:
        return "<p>None.</p>"
    cols = list(columns) or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{_esc(c.replace('_', ' '))}</th>" for c in cols)
    body = []
    for row in rows:
        cells = []
        for c in cols:
            text, css = _fmt(row.get(c))
            cells.append(f'<td class="{css}">{text}</td>' if css else f"<td>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_heatmap_png(heatmap: Heatmap) -> bytes:
    """Draw a heatmap with the Agg canvas (no display, no pyplot global state)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = np.array(
        [[np.nan if v is None else v for v in row] for row in heatmap["values"]], dtype=float
    ).reshape(len(heatmap["row_labels"]), len(heatmap["col_labels"]))
    n_rows, n_cols = values.shape
    size = min(12.0, 2.5 + 0.45 * max(n_rows, n_cols, 1))
    fig = Figure(figsize=(size + 1.5, size), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    finite = values[np.isfinite(values)]
    vmin = heatmap.get("vmin", float(finite.min()) if finite.size else 0.0)
    vmax = heatmap.get("vmax", float(finite.max()) if finite.size else 1.0)
    cmap = "RdYlGn" if vmin < 0 else "Blues"
    masked_invalid = cast(Callable[[Any], Any], np.ma.masked_invalid)  # unannotated in numpy
    image = ax.imshow(masked_invalid(values), cmap=cmap, vmin=vmin, vmax=vmax)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(
        range(n_cols),
        [_short(s) for s in heatmap["col_labels"]],
        rotation=45,
        ha="right",
        parse_math=False,
    )
    ax.set_yticks(range(n_rows), [_short(s) for s in heatmap["row_labels"]], parse_math=False)
    ax.set_title(heatmap["title"], parse_math=False)
    if "row_title" in heatmap:
        ax.set_ylabel(heatmap["row_title"], parse_math=False)
    if "col_title" in heatmap:
        ax.set_xlabel(heatmap["col_title"], parse_math=False)
    if n_rows * n_cols <= 400:
        integers = finite.size > 0 and bool(np.all(finite == np.round(finite)))
        middle = (vmin + vmax) / 2
        for (r, c), v in np.ndenumerate(values):
            if not np.isfinite(v):
                continue
            text = f"{v:.0f}" if integers else f"{v:.2f}"
            dark = v > middle if cmap == "Blues" else abs(v - middle) > (vmax - vmin) * 0.35
            color = "white" if dark else "black"
            ax.text(c, r, text, ha="center", va="center", fontsize=8, color=color)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _figure(heatmap: Heatmap) -> str:
    uri = _data_uri(render_heatmap_png(heatmap), "image/png")
    return f'<figure><img src="{uri}" alt="{_esc(heatmap["title"])}"></figure>'


def _decision(gate: GateResult | None) -> str:
    if gate is None:
        return '<div class="decision nogate">NO GATE</div>'
    accepted = gate["accepted"]
    word, css = ("ACCEPTED", "accepted") if accepted else ("REJECTED", "rejected")
    sign = "≥" if accepted else "&lt;"
    return (
        f'<div class="decision {css}">{word}</div>'
        f'<p class="gate-detail">pass rate {gate["pass_rate"]:.1%} {sign} gate '
        f"{gate['gate']:.1%} ({gate['n_passed']:,} of {gate['n_items']:,} items passed)</p>"
    )


def _summary(summary: dict[str, Any]) -> str:
    from dataops.audits.explain import summary_rows

    ci = summary.get("ci") or {}
    analytic = summary.get("standard_errors") or {}
    rows = [
        {
            "metric": row["label"],
            "value": row["value"],
            "se": row["se"],
            "t_interval": row["t_interval"],
            "ci": row["ci"],
            "meaning": row["explanation"],
        }
        for row in summary_rows(summary)
    ]
    paired = ""
    if summary.get("n_items_paired") is not None:
        paired = (
            f" Fleiss' kappa and Gwet's AC1 use every item; "
            f"{_fmt(summary.get('n_items_paired'))[0]} were rated at least twice."
        )
    counts = (
        f"<p>{_fmt(summary.get('n_items'))[0]} items, "
        f"{_fmt(summary.get('n_annotators'))[0]} annotators.{paired}</p>"
    )
    note = ""
    if ci:
        note = (
            f"<p class='meta'>Intervals: {_esc(ci.get('method', 'bootstrap'))}, "
            f"{ci.get('confidence', 0):.0%} confidence, "
            f"{_fmt(ci.get('n_resamples'))[0]} resamples, seed {_esc(ci.get('seed'))}.</p>"
        )
    cols = ["metric", "value"]
    if analytic:
        cols += ["se", "t_interval"]
        note += (
            f"<p class='meta'>SE and t interval: {_esc(analytic.get('method', 'analytic'))} "
            "(Gwet 2014), for Fleiss' kappa and Gwet's AC1.</p>"
        )
    if ci:
        cols.append("ci")
    cols.append("meaning")
    return counts + _table(rows, cols) + note


def _boxes(boxes: dict[str, Any]) -> str:
    rows = []
    for pair in boxes.get("pairs", []):
        iou = pair.get("iou") or {}
        rows.append(
            {
                "annotator_a": pair.get("annotator_a"),
                "annotator_b": pair.get("annotator_b"),
                "n_images": pair.get("n_images"),
                "precision": pair.get("precision"),
                "recall": pair.get("recall"),
                "f1": pair.get("f1"),
                "mean_iou": iou.get("mean"),
                "median_iou": iou.get("p50"),
                "alpha": pair.get("alpha"),
            }
        )
    threshold = _fmt(boxes.get("iou_threshold"))[0]
    return f"<p>Boxes matched at IoU ≥ {threshold}.</p>" + _table(rows)


def _disputed(items: list[DisputedItem], thumbnails: dict[str, bytes]) -> str:
    cards = []
    for entry in items:
        key = str(entry["item"])
        name = entry.get("file_name") or key
        data = thumbnails.get(key)
        mime = _image_mime(data) if data else None
        picture = (
            f'<img src="{_data_uri(data, mime)}" alt="{_esc(name)}">'
            if data and mime
            else "<p class='meta'>no thumbnail</p>"
        )
        which = f"{_esc(name)} · image {_esc(entry['image_id'])}" if "image_id" in entry else ""
        if entry.get("ls_task_url"):
            which += f' · <a href="{_esc(entry["ls_task_url"])}">Label Studio task</a>'
        which = which or _esc(key)
        labels = "".join(
            f"<li>{_esc(annotator)}: <b>{_esc(label)}</b></li>"
            for annotator, label in entry["labels"].items()
        )
        extra = ""
        if "majority" in entry:
            majority = entry["majority"]
            extra += f"<p>majority: {_esc(majority) if majority is not None else 'tie'}</p>"
        if entry.get("reason"):
            extra += f"<p class='meta'>{_esc(entry.get('reason'))}</p>"
        cards.append(
            f'<div class="card">{picture}<p class="id">{which}</p><ul>{labels}</ul>{extra}</div>'
        )
    return f'<div class="disputed">{"".join(cards)}</div>' if cards else "<p>None.</p>"


_OUTCOME_WORDS = {
    "accepted": "accepted (answers accepted, outvoted answers rejected)",
    "relabel": "sent to the relabel batch (answers released)",
    "released": "released to the pool (answers kept, not ground truth)",
    "unanswered": "unanswered (back to the pool)",
}
_ON_REJECT_WORDS = {
    "relabel_failed": "items that failed the audit are relabeled, the other answered items "
    "are released",
    "relabel_all": "every answered item is relabeled",
    "release": "every answered item is released, nothing is relabeled",
}


def _outcome(outcome: OutcomeReport) -> str:
    policy = outcome["policy"]
    on_reject = str(policy.get("on_reject"))
    rules: list[dict[str, Any]] = [
        {"setting": "item rule in this audit", "value": outcome["rule"]},
        {
            "setting": "round",
            "value": "1 (the original batch)"
            if outcome["round"] == 1
            else f"{outcome['round']} (relabel batch)",
        },
        {
            "setting": "on reject",
            "value": f"{on_reject}: {_ON_REJECT_WORDS.get(on_reject, on_reject)}",
        },
        {"setting": "relabel rule", "value": outcome["relabel_rule"]},
        {"setting": "relabel rounds at most", "value": policy.get("relabel_rounds")},
    ]
    rows: list[dict[str, Any]] = [
        {"outcome": _OUTCOME_WORDS.get(name, name), "items": count}
        for name, count in outcome["items"].items()
    ]
    relabel = outcome["relabel_batch_id"]
    parts = [
        "<p>An accepted batch relabels its disputed items; a rejected one follows the "
        "queue's on-reject policy. Released answers are kept but are no ground truth, and "
        "their images can be selected again.</p>",
        _table(rules, ("setting", "value")),
        _table(rows, ("outcome", "items")),
        f"<p>Relabel batch: {_esc(relabel)}.</p>" if relabel is not None else "",
    ]
    unresolved = outcome["unresolved"]
    if unresolved:
        names = outcome.get("unresolved_files") or unresolved
        listed = "".join(f"<li>{_esc(name)}</li>" for name in names)
        parts.append(
            f"<p>Unresolved after the last relabel round, released for adjudication "
            f"({len(unresolved):,}):</p><ul>{listed}</ul>"
        )
    return "".join(parts)


def _consensus(section: Mapping[str, Any]) -> str:
    rule = f"accept rule {section.get('rule')}, applied {section.get('applied')}"
    if "model" not in section:
        return f"<p>{_esc(rule)}. No consensus: {_esc(section.get('reason'))}.</p>"
    meta = (
        f"{rule}; model {section['model']}, {section.get('library')}; "
        f"{section.get('n_items')} items ({section.get('n_skipped')} not scored by the model)"
    )
    columns = (
        "annotator",
        "quality",
        "agreement_with_consensus",
        "labeled",
        "gold_accuracy",
        "n_gold",
        "worst_class",
    )
    return (
        f"<p>{_esc(meta)}. Annotators ranked by estimated quality (best first), gold "
        f"accuracy beside it.</p>{_table(section.get('annotators', []), columns)}"
    )


def render_html(report: AuditReport, thumbnails: dict[str, bytes] | None = None) -> str:
    """The audit as one HTML page; thumbnails are keyed by the disputed items' ``item``."""
    thumbnails = thumbnails or {}
    title = report["title"]
    meta = " · ".join(
        _esc(f"{name}: {value}")
        for name, value in (
            ("batch", report.get("batch")),
            ("generated", report.get("generated_at")),
        )
        if value
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="meta">{meta}</p>' if meta else "",
        _decision(report.get("gate")),
        f"<h2>Outcome</h2>{_outcome(report['outcome'])}" if "outcome" in report else "",
        "<h2>Agreement</h2>",
        _summary(report["summary"]),
    ]
    figures = [h for h in (report.get("pairwise"), report.get("confusion")) if h is not None]
    if figures:
        parts.append("<h2>Heatmaps</h2><div class='figures'>")
        parts.extend(_figure(h) for h in figures)
        parts.append("</div>")
    sections: tuple[tuple[str, Sequence[Mapping[str, Any]] | None], ...] = (
        ("Per annotator", report.get("annotators")),
        ("Per class", report.get("classes")),
        ("Per vendor", report.get("vendors")),
    )
    for heading, rows in sections:
        if rows is not None:
            parts.append(f"<h2>{heading}</h2>{_table(rows)}")
    if "consensus" in report:
        parts.append(f"<h2>Consensus (CROWDLAB)</h2>{_consensus(report['consensus'])}")
    if "boxes" in report:
        parts.append(f"<h2>Boxes</h2>{_boxes(report['boxes'])}")
    if "disputed" in report:
        disputed = report["disputed"]
        parts.append(f"<h2>Disputed items ({len(disputed):,})</h2>")
        parts.append(_disputed(disputed, thumbnails))
    raw = json.dumps(report, indent=2, default=str, ensure_ascii=False)
    parts.append(f"<details><summary>Raw report (JSON)</summary><pre>{_esc(raw)}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)
