"""Catalog set-up and the long-running processes (workers, API)."""

from __future__ import annotations

import os
import sys

import typer

from dataops.cli.output import console, emit


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("worker")(worker)


def init(as_json: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
    """Create the catalog or upgrade it to the latest schema (alembic upgrade head)."""
    from dataops import migrate
    from dataops.config import get_settings

    settings = get_settings()
    migrate.upgrade()
    revision = migrate.current_revision()
    data = {
        "database": "sqlite" if settings.database_url is None else "external",
        "revision": revision,
        "data_dir": str(settings.resolved_data_dir),
        "jobs": "in-process" if settings.embedded else "celery",
    }
    emit(
        data,
        as_json,
        lambda: console.print(
            f"catalog ready at revision [bold]{revision}[/bold] "
            f"({data['database']}, jobs {data['jobs']}, data dir {data['data_dir']})"
        ),
    )


def worker(
    queues: str = typer.Option(
        "ingest,dedup,score,sync,audit,manifest",
        "--queues",
        "-Q",
        help="Comma-separated queues; give GPU machines `score`, CPU machines the rest.",
    ),
    concurrency: int = typer.Option(
        0, "--concurrency", "-c", help="Worker processes (0: one per core)."
    ),
    beat: bool = typer.Option(
        False, "--beat", help="Also run the periodic scheduler (one per deployment)."
    ),
    loglevel: str = typer.Option("INFO", "--loglevel"),
) -> None:
    """Run a Celery worker for the given queues (wraps `celery -A workers.app worker`)."""
    from dataops.config import get_settings
    from dataops.errors import DataopsError
    from dataops.jobs import dispatch
    from dataops.jobs.registry import QUEUES
    from dataops.migrate import ensure_ready

    known = sorted(set(QUEUES.values()) | {"maintenance"})
    unknown = [q for q in queues.split(",") if q.strip() not in known]
    if unknown:  # a worker on a misspelt queue would leave every job there waiting
        wrong = repr(unknown[0]).replace("{", "{{").replace("}", "}}")
        raise DataopsError(
            f"{{queues}}: unknown queue {wrong}; use {','.join(known)}", fields=("queues",)
        )
    settings = get_settings()
    ensure_ready()  # a worker never starts on a catalog that is missing or not migrated
    if not settings.broker_url:
        raise DataopsError(
            "no broker configured: set DATAOPS_BROKER_URL (e.g. redis://127.0.0.1:6379/0)"
        )
    dispatch.check_broker()
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", queues]
    argv += ["--loglevel", loglevel, "--without-gossip", "--without-mingle"]
    if concurrency:
        argv += ["-c", str(concurrency)]
    if beat:
        argv.append("-B")
    os.execv(sys.executable, argv)  # noqa: S606 - replaces this process with celery
