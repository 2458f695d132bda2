"""`dataops audit ...`: agreement on a ratings file, batch audits and their reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from dataops.cli.jobrun import run_job
from dataops.cli.output import console, emit, table

app = typer.Typer(
    help="Inter-annotator agreement, gold checks and acceptance gates.", no_args_is_help=True
)

_METRICS = (
    "percent_agreement",
    "cohen_kappa",
    "weighted_kappa",
    "fleiss_kappa",
    "gwet_ac1",
    "krippendorff_alpha",
)


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _interval(ci: dict[str, Any] | None, key: str) -> str:
    bounds = (ci or {}).get(key)
    return f"[{bounds[0]:.3f}, {bounds[1]:.3f}]" if bounds else "–"


def _analytic(summary: dict[str, Any], key: str) -> str:
    """Gwet's standard error and t interval, where the summary has one for the metric."""
    block = (summary.get("standard_errors") or {}).get(key) or {}
    if block.get("se") is None:
        return "–"
    return f"±{block['se']:.3f} {_interval(block, 'ci')}"


def _render_summary(title: str, summary: dict[str, Any]) -> None:
    ci = summary.get("ci")
    columns = ["metric", "value", "SE, 95% t interval", *(["95% bootstrap CI"] if ci else [])]
    rows = [
        [
            key if key != "weighted_kappa" else f"weighted_kappa ({summary.get('weights')})",
            _num(summary.get(key)),
            _analytic(summary, key),
            *([_interval(ci, key)] if ci else []),
        ]
        for key in _METRICS
        if key in summary
    ]
    table(title, columns, rows)
    if "n_items_paired" in summary:
        console.print(
            f"Fleiss' kappa and AC1 used all {summary['n_items']} items "
            f"({summary['n_items_paired']} rated at least twice).",
            highlight=False,
        )


@app.command("agreement")
def agreement(
    csv_path: Path = typer.Option(
        ..., "--csv", help="Ratings in long form: columns item, annotator, label."
    ),
    level: str | None = typer.Option(
        None,
        "--level",
        help="nominal, ordinal or interval (the distance for alpha; default nominal).",
    ),
    bootstrap: int | None = typer.Option(
        None, "--bootstrap", help="Resamples for 95% confidence intervals (default 0: none)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the bootstrap (default 0)."),
    categories: str | None = typer.Option(
        None, "--categories", help="Order of ordinal text labels, comma-separated: low,mid,high."
    ),
    weights: str | None = typer.Option(
        None,
        "--weights",
        help="Also report weighted kappa: linear or quadratic, over the ordinal category order "
        "(mean over annotator pairs for more than two annotators).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Percent agreement, Cohen's kappa (2 annotators), Fleiss' kappa, Gwet's AC1, alpha."""
    from dataops.audits.schemas import AgreementRequest, parse
    from dataops.audits.service import agreement_from_csv

    given = {
        "level": level,
        "resamples": bootstrap,
        "seed": seed,
        "categories": [c.strip() for c in categories.split(",")] if categories else None,
        "weights": weights,
    }
    request = parse(AgreementRequest, {k: v for k, v in given.items() if v is not None})
    summary = agreement_from_csv(csv_path, request)
    emit(
        summary,
        as_json,
        lambda: _render_summary(
            f"{summary['n_items']} items, {summary['n_annotators']} annotators", summary
        ),
    )


@app.command("run")
def run(
    batch_id: int = typer.Argument(..., help="The batch to audit."),
    gate: float | None = typer.Option(
        None, "--gate", help="Accept when the pass rate is at least this (default 0.95)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the bootstrap (default 0)."),
    bootstrap: int | None = typer.Option(
        None, "--bootstrap", help="Resamples for confidence intervals (default 1000)."
    ),
    gold_threshold: float | None = typer.Option(
        None,
        "--gold-threshold",
        help="Gold accuracy an annotator needs to be flagged as passing (default 0.9).",
    ),
    task: str | None = typer.Option(
        None, "--task", help="Labeling task, when a batch has several."
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="With a broker: wait for the worker."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Audit a batch: agreement on overlap items, gold accuracy, then accept or reject it.

    Disputed items (ties, gold misses) become a new relabel batch for the same queue; a
    rejected batch follows its queue's on-reject policy (see the README).
    """
    from dataops.audits.schemas import AuditRequest, parse
    from dataops.audits.service import check_auditable
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready

    given = {
        "batch_id": batch_id,
        "gate": gate,
        "seed": seed,
        "resamples": bootstrap,
        "gold_threshold": gold_threshold,
        "task": task,
    }
    request = parse(AuditRequest, {k: v for k, v in given.items() if v is not None})
    ensure_ready()
    with session_scope() as session:
        check_auditable(session, batch_id)  # fail fast, before a job is recorded
    params = request.model_dump(mode="json")
    job = run_job("audit", params, description=f"audit batch {batch_id}", wait=wait)
    data = {"job_id": job.id, **(job.result or {"status": job.status})}
    if "report_html_key" in data:
        from dataops.audits.service import report_path

        data["report_path"] = report_path(data["report_html_key"])

    def render() -> None:
        if "decision" not in data:
            console.print(f"job {job.id}: {data.get('status')}")
            return
        _render_audit(data)

    emit(data, as_json, render)


def _render_audit(data: dict[str, Any]) -> None:
    colour = "green" if data["decision"] == "accepted" else "red"
    rate = data["pass_rate"]
    console.print(
        f"audit {data['id']} of batch {data['batch_id']}: "
        f"[bold {colour}]{data['decision'].upper()}[/bold {colour}] "
        f"(pass rate {_num(rate)} vs gate {data['gate']:.3f}; "
        f"{data['n_passed']} of {data['n_items']} audited items passed)",
        highlight=False,
    )
    if data.get("relabel_batch_id"):
        console.print(
            f"{data.get('n_relabeled', data['n_disputed'])} items → relabel batch "
            f"{data['relabel_batch_id']}"
        )
    if data.get("n_released"):
        console.print(f"{data['n_released']} items released to the pool (answers kept)")
    if data.get("report_path"):
        console.print(f"report: {data['report_path']}", highlight=False)
    elif data.get("report_html_key"):
        console.print(
            f"report: dataops audit report {data['id']} --out DIR (writes audit-{data['id']}.html)",
            highlight=False,
        )


@app.command("show")
def show(
    audit_id: int = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """One audit with its metrics, per annotator and per class tables."""
    from dataops.audits import service
    from dataops.audits.schemas import AuditDetail
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready

    ensure_ready()
    with session_scope() as session:
        audit = service.get_audit(session, audit_id)
        data = AuditDetail(
            **service.audit_out(audit).model_dump(), metrics=audit.metrics
        ).model_dump(mode="json")
    data["report_path"] = service.report_path(data["report_html_key"])

    def render() -> None:
        _render_audit(data)
        metrics = data["metrics"]
        _render_summary("agreement on overlap items", metrics.get("summary", {}))
        annotators = metrics.get("annotators", [])
        table(
            "annotators",
            ["annotator", "vendor", "items", "shared", "agreement", "gold acc.", "gold"],
            [
                [
                    a["annotator"],
                    a.get("vendor"),
                    a.get("n_items"),
                    a.get("n_shared_items"),
                    _num(a.get("agreement")),
                    _num(a.get("gold_accuracy")),
                    {True: "pass", False: "FAIL", None: "–"}[a.get("gold_passed")],
                ]
                for a in annotators
            ],
        )

    emit(data, as_json, render)


@app.command("list")
def list_audits(
    batch: int | None = typer.Option(None, "--batch", help="Only audits of this batch."),
    limit: int = typer.Option(100, "--limit"),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many (newest first)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Audits, newest first."""
    from dataops.audits import service
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready

    ensure_ready()
    with session_scope() as session:
        audits = [
            service.audit_out(a).model_dump(mode="json")
            for a in service.list_audits(session, batch_id=batch, limit=limit, offset=offset)
        ]
    emit(
        {"audits": audits},
        as_json,
        lambda: table(
            f"{len(audits)} audits",
            ["id", "batch", "decision", "pass rate", "gate", "items", "relabel batch", "created"],
            [
                [
                    a["id"],
                    a["batch_id"],
                    a["decision"],
                    _num(a["pass_rate"]),
                    _num(a["gate"]),
                    a["n_items"],
                    a["relabel_batch_id"],
                    a["created_at"][:19],
                ]
                for a in audits
            ],
        ),
    )


@app.command("report")
def report(
    audit_id: int = typer.Argument(...),
    out: Path = typer.Option(..., "--out", help="Folder to write audit-<id>.html and .json to."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Write an audit's self-contained HTML report and its JSON document to a folder."""
    from dataops.audits import service
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready

    ensure_ready()
    with session_scope() as session:
        paths = [str(p.absolute()) for p in service.export_report(session, audit_id, out)]

    def render() -> None:
        for path in paths:
            console.print(path, highlight=False)

    emit({"id": audit_id, "files": paths}, as_json, render)
