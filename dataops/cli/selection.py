"""`dataops select`: pick the images worth labeling next and hand them to a new batch."""

from __future__ import annotations

import typer

from dataops.cli.jobrun import run_job
from dataops.cli.output import console, emit, table
from dataops.selection.registry import names as strategy_names


def register(app: typer.Typer) -> None:
    app.command("select")(select)


def select(
    strategy: str = typer.Option(..., "--strategy", help=", ".join(strategy_names()) + "."),
    size: int = typer.Option(..., "--size", help="How many images the batch gets."),
    purpose: str | None = typer.Option(
        None,
        "--purpose",
        help="active_learning, hard_negative, audit, relabel or cold_start (no model: random "
        "or kcenter over perceptual hashes).",
    ),
    class_name: str | None = typer.Option(
        None, "--class", help="hard_negative: the class whose false positives to find."
    ),
    mode: str | None = typer.Option(
        None,
        "--mode",
        help="hard_negative: unlabeled (default) or labeled (accepted labels of other classes).",
    ),
    queue: str | None = typer.Option(None, "--queue", help="Vendor queue for the batch."),
    seed: int | None = typer.Option(None, "--seed", help="Same seed and catalog: same batch (0)."),
    stratify_by: str | None = typer.Option(
        None,
        "--stratify-by",
        help="Image attribute (site, device, ...): each value gets its share of the batch.",
    ),
    model: str | None = typer.Option(
        None, "--model", help="NAME or NAME:VERSION (default: the only registered model)."
    ),
    task: str | None = typer.Option(
        None,
        "--task",
        help="Labeling task (default: the queue's guideline name, else the only task there is).",
    ),
    allow_partial: bool = typer.Option(
        False,
        "--allow-partial",
        help="Take what there is when fewer images are eligible than --size, or cap --size at "
        "the configured maximum (otherwise refused).",
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="With a broker: wait for the worker."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a draft batch from eligible images: never quarantined, labeled for the task, in
    another open batch, or held out (val/test) with their duplicates; one image per duplicate
    group. Without --queue the draft can be given one later: `dataops batches assign`."""
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready
    from dataops.selection.plan import pin
    from dataops.selection.schemas import select_request

    ensure_ready()
    given = {
        "strategy": strategy,
        "size": size,
        "purpose": purpose,
        "seed": seed,
        "model": model,
        "class_name": class_name,
        "mode": mode,
        "queue": queue,
        "stratify_by": stratify_by,
        "task": task,
        "allow_partial": allow_partial or None,
    }
    request = select_request({k: v for k, v in given.items() if v is not None})
    with session_scope() as session:
        request = pin(session, request)  # fail fast, before a job is recorded
    params = request.model_dump(exclude_defaults=True)
    job = run_job("select", params, description=f"select {strategy}", wait=wait)
    data = {"job_id": job.id, **(job.result or {"status": job.status})}

    def render() -> None:
        if "items" not in data:
            console.print(f"job {job.id}: {data.get('status')}")
            return
        params = data["params"]
        table(
            f"batch {data['id']}",
            ["task", "purpose", "strategy", "model", "queue", "size", "requested", "eligible"],
            [
                [
                    params.get("task"),
                    data["purpose"],
                    data["strategy"],
                    data["model"],
                    data["queue"],
                    data["size"],
                    params.get("requested"),
                    params.get("eligible"),
                ]
            ],
        )
        table(
            None,
            ["#", "image", "score", "uri"],
            [
                [
                    i["position"],
                    i["image_id"],
                    "" if i["score"] is None else f"{i['score']:.4f}",
                    i["uri"],
                ]
                for i in data["items"][:50]
            ],
        )
        if len(data["items"]) > 50:
            console.print(f"... {len(data['items']) - 50} more (see --json)")

    emit(data, as_json, render)
