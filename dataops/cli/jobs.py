"""`dataops jobs ...`: status, progress and errors of long work."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import typer

from dataops.cli.errors import job_error
from dataops.cli.output import emit, table

if TYPE_CHECKING:
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")

app = typer.Typer(help="Status, progress and errors of jobs.", no_args_is_help=True)


@app.command("list")
def list_jobs(
    status: str | None = typer.Option(
        None, "--status", help="pending, running, succeeded or failed."
    ),
    kind: str | None = typer.Option(None, "--kind", help="e.g. ingest."),
    limit: int | None = typer.Option(None, "--limit", help="At most this many (default 50)."),
    grouped: bool = typer.Option(
        False,
        "--grouped",
        help="One row per kind (sync jobs: per queue) with counts, the newest job's status "
        "and the numbers the jobs reported, summed.",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recent jobs, newest first (or grouped by kind with --grouped)."""
    from dataops.db import session_scope
    from dataops.jobs import service
    from dataops.jobs.schemas import JobListRequest, JobOut
    from dataops.migrate import ensure_ready

    if grouped:
        if status is not None:
            from dataops.errors import DataopsError

            raise DataopsError(
                "{status} does not apply to --grouped (each group counts its running and "
                "failed jobs)",
                fields=("status",),
            )
        _list_groups(kind, limit, as_json)
        return
    request = _parse(JobListRequest, {"status": status, "kind": kind, "limit": limit})
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
                    (job_error(j["error"], j["result"]) or "")[:60],
                ]
                for j in jobs
            ],
        ),
    )


def _parse(model: type[M], options: dict[str, object]) -> M:
    """Options as the operation's request model; a bad one names its --flag."""
    from pydantic import ValidationError

    from dataops.errors import DataopsError

    try:
        return model.model_validate({k: v for k, v in options.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0])
        detail = str(first["msg"]).replace("{", "{{").replace("}", "}}")
        raise DataopsError(f"{{{field}}}: {detail}", fields=(field,)) from None


def _list_groups(kind: str | None, limit: int | None, as_json: bool) -> None:
    from dataops.db import session_scope
    from dataops.jobs.groups import job_groups
    from dataops.jobs.schemas import JobGroupRequest
    from dataops.migrate import ensure_ready

    request = _parse(JobGroupRequest, {"kind": kind, "limit": limit})
    ensure_ready()
    with session_scope() as session:
        groups = [g.model_dump(mode="json") for g in job_groups(session, request)]
    emit(
        {"groups": groups},
        as_json,
        lambda: table(
            "jobs by kind",
            ["kind", "queue", "jobs", "running", "failed", "last", "last finished", "totals"],
            [
                [
                    g["kind"],
                    g["queue"] or "",
                    g["jobs"],
                    g["running"],
                    g["failed"],
                    g["last_status"] or "",
                    (g["last_finished_at"] or "")[:19],
                    ", ".join(f"{k} {v}" for k, v in g["totals"].items())[:60],
                ]
                for g in groups
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
    shown = {**data, "error": job_error(data["error"], data["result"])}
    emit(data, as_json, lambda: table(None, ["field", "value"], [[k, v] for k, v in shown.items()]))


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
