"""The `dataops` command. Sub-command modules import services lazily so `--help` stays fast."""

from __future__ import annotations

import sys

import typer

from dataops.cli import (
    audit,
    batches,
    catalog,
    dedup,
    demo,
    jobs,
    labeling,
    manifest,
    scoring,
    selection,
    serve,
    system,
    users,
)

app = typer.Typer(
    name="dataops",
    help=(
        "Catalog images, find duplicates, pick what to label, sync vendor queues with Label "
        "Studio, audit agreement and freeze leakage-safe manifests.\n\n"
        "Embedded by default (SQLite under --data-dir, jobs in-process); set "
        "DATAOPS_DATABASE_URL and DATAOPS_BROKER_URL to run on PostgreSQL with Celery workers. "
        "Only init, ingest and demo create a catalog; other commands refuse to run where there "
        "is none.\n\n"
        "Exit codes: 1 a check found problems, 2 bad input or configuration, 3 a service is "
        "down (database, broker, Label Studio, no worker on the job's queue), 130 interrupted."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


@app.callback()
def _root(
    data_dir: str | None = typer.Option(
        None,
        "--data-dir",
        envvar="DATAOPS_DATA_DIR",
        help="Where the embedded catalog and blobs live (default ./.dataops, or .env's).",
    ),
) -> None:
    import os

    from dataops.config import reset_settings

    if data_dir:
        os.environ["DATAOPS_DATA_DIR"] = data_dir
    reset_settings()


system.register(app)
catalog.register(app)
app.add_typer(catalog.images_app, name="images")
app.add_typer(jobs.app, name="jobs")
app.add_typer(dedup.app, name="dedup")
app.add_typer(audit.app, name="audit")
app.add_typer(batches.app, name="batches")
app.add_typer(manifest.app, name="manifest")
demo.register(app)
scoring.register(app)
selection.register(app)
labeling.register(app)
serve.register(app)
app.add_typer(users.users_app, name="users")
app.add_typer(users.tokens_app, name="tokens")


def main() -> None:
    """Entry point: known errors become one line on stderr and a non-zero exit."""
    from dataops.cli.errors import handle

    try:
        app()
    except (Exception, KeyboardInterrupt) as exc:
        sys.exit(handle(exc))
