"""`dataops batches ...`: push batches to Label Studio, pull annotations, see where they stand."""

from __future__ import annotations

from typing import Any

import typer

from dataops.cli.jobrun import run_job
from dataops.cli.output import console, emit, table

app = typer.Typer(
    help="Send batches to vendor queues in Label Studio and pull their labels back.",
    no_args_is_help=True,
)

_COLUMNS = ["id", "status", "queue", "items", "tasks", "annotations", "complete", "due", "overdue"]


def _row(summary: dict[str, Any]) -> list[Any]:
    due = summary["due_at"]
    return [
        summary["id"],
        summary["status"],
        summary["queue"],
        summary["items"],
        summary["tasks"],
        summary["annotations"],
        f"{summary['items_complete']}/{summary['items']}",
        due[:16] if due is not None else "",
        "OVERDUE" if summary["overdue"] else "",
    ]


def _check_batch(batch: int) -> None:
    """Fail fast, before a job is recorded, on a batch that cannot be synced."""
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready
    from dataops.selection import lifecycle

    ensure_ready()
    with session_scope() as session:
        lifecycle.check_open(lifecycle.get_batch(session, batch))


def _emit_job(job: Any, as_json: bool, title: str) -> None:
    data = {"job_id": job.id, **(job.result or {"status": job.status})}

    def render() -> None:
        summary = data.get("batch", data)
        if "items" in summary:
            table(title, _COLUMNS, [_row(summary)])
        counts = [k for k in ("created", "existing", "skipped", "deleted", "invalid") if k in data]
        if counts:
            table(None, counts, [[data[k] for k in counts]])
        for line in data.get("errors", []):
            console.print(f"[yellow]not stored:[/yellow] {line}", highlight=False)
        console.print(f"job {job.id}")

    emit(data, as_json, render)


def _sync_request(params: dict[str, Any]) -> dict[str, Any]:
    """The job's params as the sync request validates them (defaults filled in once, there)."""
    from dataops.labelstudio.schemas import sync_request

    return sync_request({k: v for k, v in params.items() if v is not None}).model_dump(
        exclude_none=True
    )


_PAGE_SIZE_HELP = "Tasks per request and commit (default 100)."


@app.command("push")
def push(
    batch: int = typer.Argument(..., help="Batch id."),
    page_size: int | None = typer.Option(None, "--page-size", help=_PAGE_SIZE_HELP),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="With a broker: wait for the worker."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Create the batch's tasks in its queue's Label Studio project.

    Idempotent and resumable: tasks already in Label Studio (found by their dataops item key)
    are not created again, so re-run it after any failure.
    """
    from dataops.db import session_scope
    from dataops.errors import Conflict
    from dataops.labelstudio.errors import BatchHasNoQueue
    from dataops.labelstudio.push import check_pushable
    from dataops.migrate import ensure_ready

    params = _sync_request({"action": "push", "batch_id": batch, "page_size": page_size})
    ensure_ready()
    with session_scope() as session:
        try:
            check_pushable(session, batch)
        except BatchHasNoQueue as exc:
            raise Conflict(
                f"batch {batch} has no vendor queue; give it one with `dataops batches assign "
                f"{batch} --queue Q` (or cancel it: `dataops batches cancel {batch}`)"
            ) from exc
    _emit_job(run_job("sync", params, description="push", wait=wait), as_json, "pushed")


@app.command("pull")
def pull(
    batch: int | None = typer.Argument(None, help="Batch id (pulls its whole queue)."),
    queue: str | None = typer.Option(None, "--queue", help="Queue name or id instead of a batch."),
    full: bool = typer.Option(
        False, "--full", help="Read every task, and record annotations deleted in Label Studio."
    ),
    page_size: int | None = typer.Option(None, "--page-size", help=_PAGE_SIZE_HELP),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="With a broker: wait for the worker."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Store annotations made since the last pull as label versions; re-running adds nothing."""
    from dataops.errors import DataopsError

    if (batch is None) == (queue is None):
        raise DataopsError("give either a BATCH or --queue Q")
    target: dict[str, Any] = {"batch_id": batch}
    if batch is not None:
        _check_batch(batch)
    else:
        from dataops.db import session_scope
        from dataops.labeling.service import get_queue
        from dataops.migrate import ensure_ready

        ensure_ready()
        with session_scope() as session:
            target = {"queue_id": get_queue(session, str(queue)).id}
    params = _sync_request({"action": "pull", **target, "full": full, "page_size": page_size})
    _emit_job(run_job("sync", params, description="pull", wait=wait), as_json, "pulled")


@app.command("show")
def show(
    batch: int = typer.Argument(..., help="Batch id."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Status and counts: items, tasks, annotations, label versions, overlap and gold items."""
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready
    from dataops.selection import lifecycle

    ensure_ready()
    with session_scope() as session:
        summary = lifecycle.batch_summary(session, batch)

    def render() -> None:
        table(None, ["field", "value"], [[k, v] for k, v in summary.items()])

    emit(summary, as_json, render)


@app.command("list")
def list_batches(
    status: str | None = typer.Option(None, "--status", help="Only batches in this status."),
    queue: str | None = typer.Option(None, "--queue", help="Only batches of this queue."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Every batch, newest first, with its counts; overdue ones are flagged."""
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready
    from dataops.selection import lifecycle

    ensure_ready()
    with session_scope() as session:
        batches = lifecycle.list_batches(session, status=status, queue=queue)
    emit(
        {"batches": batches},
        as_json,
        lambda: table("batches", _COLUMNS, [_row(b) for b in batches]),
    )


def _render_change(title: str, change: dict[str, Any]) -> None:
    fields = ["id", "status", "queue", "task", "size", "released", "removed_tasks", "kept_tasks"]
    table(title, fields, [[change.get(k) for k in fields]])
    if change.get("dropped"):
        console.print(
            f"taken out (already labeled for {change['task']}): "
            + ", ".join(map(str, change["dropped"]))
        )


@app.command("cancel")
def cancel(
    batch: int = typer.Argument(..., help="Batch id."),
    reason: str | None = typer.Option(None, "--reason", help="Why, for the audit log."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="With a broker: wait for the pull."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Cancel a draft or a sent batch: its images are released, Label Studio tasks nobody
    labeled are deleted, labels already made are kept (and pulled). Safe to repeat."""
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready
    from dataops.selection.cancel import cancel_batch

    ensure_ready()
    change = cancel_batch(batch, transaction=session_scope, actor=_actor(), reason=reason)
    data = change.model_dump(mode="json")
    if change.kept_tasks:
        from dataops.errors import DataopsError, ServiceUnavailable
        from dataops.selection import lifecycle

        with session_scope() as session:
            queue_id = lifecycle.get_batch(session, batch).queue_id
        params = _sync_request({"action": "pull", "queue_id": queue_id})
        try:
            job = run_job("sync", params, description="pull kept labels", wait=wait)
        except DataopsError as exc:
            # The cancel stands; the kept labels wait in Label Studio for the next pull.
            kind = ServiceUnavailable if isinstance(exc, ServiceUnavailable) else DataopsError
            raise kind(
                f"batch {batch} is cancelled ({change.released} images released, "
                f"{change.removed_tasks} unlabelled tasks removed), but pulling the labels of "
                f"its {change.kept_tasks} kept tasks failed: {exc}; run `dataops batches pull "
                f"--queue {change.queue}` later"
            ) from None
        data["pull_job_id"] = job.id
        data["pull"] = job.result or {"status": job.status}
    emit(data, as_json, lambda: _render_change("cancelled", data))


@app.command("assign")
def assign(
    batch: int = typer.Argument(..., help="Batch id (a draft)."),
    queue: str = typer.Option(..., "--queue", help="Vendor queue name or id."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Give a draft batch a vendor queue so it can be pushed; the queue's guideline names its
    task, and images already labeled for that task are taken out and released."""
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready
    from dataops.selection.assign import assign_batch

    ensure_ready()
    with session_scope() as session:
        data = assign_batch(session, batch, queue, actor=_actor()).model_dump(mode="json")
    emit(data, as_json, lambda: _render_change("assigned", data))


def _actor() -> str:
    from dataops.cli.jobrun import _actor as cli_actor

    return cli_actor()
