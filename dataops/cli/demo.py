"""`dataops demo`: the whole pipeline on the embedded catalog, end to end."""

from __future__ import annotations

from pathlib import Path

import typer

from dataops.cli.output import console, emit, err_console, table


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    path: Path | None = typer.Argument(
        None, help="A folder of images to use instead of the built-in demo set."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run init + ingest (+ the rest of the pipeline) and print a summary.

    With no PATH it builds a demo set from images that ship with scikit-learn, so it works on
    a fresh machine with no extra files.
    """
    from dataops import migrate
    from dataops.catalog import service
    from dataops.catalog.demo_data import build_demo_set
    from dataops.cli.jobrun import run_job
    from dataops.config import get_settings
    from dataops.db import session_scope
    from dataops.errors import DataopsError

    settings = get_settings()
    migrate.upgrade()
    if path is None:
        path = settings.resolved_data_dir / "demo-images"
        counts = build_demo_set(path)
        err_console.print(f"demo set: {counts} under {path}")
    elif not path.is_dir():
        raise DataopsError(f"{path}: not a folder")
    job = run_job(
        "ingest", {"paths": [str(path.absolute())], "source": "demo"}, description="ingest"
    )
    result = job.result or {}
    with session_scope() as session:
        statuses = service.status_counts(session)
        reasons = service.quarantine_reasons(session)
    summary = {
        "ingest": result,
        "catalog": statuses,
        "quarantined": [{"uri": u, "reason": r} for u, r in reasons],
    }

    def render() -> None:
        table(
            "dataops demo",
            ["step", "result"],
            [
                [
                    "ingest",
                    f"{result.get('files')} files: {result.get('new')} new, {result.get('skipped')} skipped, {result.get('quarantined')} quarantined",
                ],
                ["catalog", ", ".join(f"{k}={v}" for k, v in sorted(statuses.items()))],
            ],
        )
        for uri, reason in reasons:
            console.print(f"[yellow]quarantined[/yellow] {uri}: {reason}", highlight=False)

    emit(summary, as_json, render)
