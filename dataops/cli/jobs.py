"""`dataops jobs ...`: status, progress and errors of long work."""

from __future__ import annotations

import typer

from dataops.cli.output import emit, table

app = typer.Typer(help="Status, progress and errors of jobs.", no_args_is_help=True)


@app.command("list")
def list_jobs(
    status: str | None = typer.Option(
        None, "--status", help="pending, running, succeeded or failed."
    ),
    kind: str | None = typer.Option(None, "--kind", help="e.g. ingest."),
    limit: int | None = typer.Option(None, "--limit", help="At most this many (default 50)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recent jobs, newest first."""
    from pydantic import ValidationError

    from dataops.db import session_scope
    from dataops.errors import DataopsError
    from dataops.jobs import service
    from dataops.jobs.schemas import JobListRequest, JobOut
    from dataops.migrate import ensure_ready

    options = {"status": status, "kind": kind, "limit": limit}
    try:
        request = JobListRequest.model_validate({k: v for k, v in options.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0])
        detail = str(first["msg"]).replace("{", "{{").replace("}", "}}")
        raise DataopsError(f"{{{field}}}: {detail}", fields=(field,)) from None
    ensure_ready()
    with session_scope() as session:
        jobs = [
            JobOut.model_validate(j).model_dump(mode="json")
            for j in service.list_jobs(session, request)
        ]
    emit(
        {"jobs": jobs},
        as_json,
        lambda: table(
            "jobs",
            ["id", "kind", "status", "progress", "created", "error"],
            [
                [
                    j["id"],
                    j["kind"],
                    j["status"],
                    f"{j['progress_done']}/{j['progress_total']}",
                    j["created_at"][:19],
                    (j["error"] or "")[:60],
                ]
                for j in jobs
            ],
        ),
    )


@app.command("show")
def show_job(job_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """One job with its parameters, result and error."""
    from dataops.db import session_scope
    from dataops.jobs import service
    from dataops.jobs.schemas import JobOut
    from dataops.migrate import ensure_ready

    ensure_ready()
    with session_scope() as session:
        data = JobOut.model_validate(service.get_job(session, job_id)).model_dump(mode="json")
    emit(data, as_json, lambda: table(None, ["field", "value"], [[k, v] for k, v in data.items()]))


@app.command("recover")
def recover(
    older_than: int | None = typer.Option(
        None,
        "--older-than",
        help="Seconds a pending job may wait with no queued message (default: the "
        "worker.stale_after setting, 900); running jobs are re-sent once their lease has "
        "expired, whatever this says.",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Re-send jobs that lost their worker (expired lease) or their broker message."""
    from dataops.jobs.recovery import recover_stale
    from dataops.migrate import ensure_ready

    ensure_ready()
    ids = recover_stale(older_than)
    emit({"requeued": ids}, as_json, lambda: table("requeued", ["job"], [[i] for i in ids]))
