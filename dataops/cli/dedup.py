"""`dataops dedup ...`: find duplicates, list and show groups, report split leaks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from dataops.cli.jobrun import run_job
from dataops.cli.output import console, emit, err_console, table

app = typer.Typer(
    help="Exact and near-duplicate images: duplicate groups, contact sheets, split leaks.",
    no_args_is_help=True,
)

EXIT_LEAKS = 1

_SUMMARY_COLUMNS = [
    "images",
    "new_images",
    "pairs",
    "groups",
    "new_groups",
    "merged",
    "split_reported",
    "seconds",
]


@app.command("run")
def run(
    radius: int | None = typer.Option(
        None, "--radius", help="pHash Hamming radius (default: dedup.radius, 10)."
    ),
    semantic: bool = typer.Option(
        False, "--semantic", help="Also match model embeddings (needs `dataops score` first)."
    ),
    full: bool = typer.Option(
        False, "--full", help="Recompute every pair and reconcile the groups."
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="With a broker: wait for the worker."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Find near-duplicates of images added since the last run and update the groups.

    Incremental: only new images are queried against the stored index; new pairs may merge
    existing groups but never split one. An index file that disagrees with the catalog is
    rebuilt (the summary says why). Re-running on an unchanged catalog changes nothing.
    """
    from dataops.db import session_scope
    from dataops.dedup.schemas import DedupRunRequest
    from dataops.dedup.semantic import embedding_source
    from dataops.dedup.service import dedup_params
    from dataops.migrate import ensure_ready

    dedup_params(radius)
    request = DedupRunRequest(radius=radius, semantic=semantic, full=full)
    if request.semantic:
        ensure_ready()
        with session_scope() as session:
            embedding_source(session)
    job = run_job("dedup", request.model_dump(), description="dedup", wait=wait)
    data: dict[str, Any] = {"job_id": job.id, **(job.result or {"status": job.status})}

    def render() -> None:
        if "images" not in data:
            console.print(f"job {job.id}: {data.get('status')}")
            return
        table("dedup", _SUMMARY_COLUMNS, [[data[k] for k in _SUMMARY_COLUMNS]])
        if data.get("rebuilt_index"):
            console.print(f"[yellow]index rebuilt:[/yellow] {data['rebuild_reason']}")
        if data.get("split_groups"):
            console.print(f"[yellow]split groups:[/yellow] {data['split_groups']}")
        for rep, size in data.get("oversize_groups", []):
            console.print(f"[yellow]large group:[/yellow] representative {rep}, {size} images")
        console.print(f"job {job.id}")

    emit(data, as_json, render)


@app.command("groups")
def groups(
    limit: int | None = typer.Option(None, "--limit", help="At most this many groups."),
    offset: int = typer.Option(0, "--offset"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """List duplicate groups, representative first."""
    from dataops.db import session_scope
    from dataops.dedup import service
    from dataops.migrate import ensure_ready

    ensure_ready()
    with session_scope() as session:
        found = service.list_groups(session, limit=limit, offset=offset)
    data = {"groups": [g.model_dump() for g in found]}

    def render() -> None:
        table(
            f"{len(found)} duplicate groups",
            ["group", "representative", "size", "members"],
            [
                [
                    g.id,
                    g.representative,
                    len(g.members),
                    ", ".join(str(m.image_id) for m in g.members[:8])
                    + (" ..." if len(g.members) > 8 else ""),
                ]
                for g in found
            ],
        )

    emit(data, as_json, render)


@app.command("show")
def show(
    group: int = typer.Argument(..., help="Group id (see `dataops dedup groups`)."),
    out: Path | None = typer.Option(
        None, "--out", help="Where to write the contact sheet (default: under the data dir)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Write a contact sheet (PNG) of the group's thumbnails and print its path."""
    from dataops.config import get_settings
    from dataops.db import session_scope
    from dataops.dedup import service
    from dataops.errors import DataopsError
    from dataops.migrate import ensure_ready

    ensure_ready()
    with session_scope() as session:
        detail = service.group_detail(session, group)
        png = service.contact_sheet(session, group)
    target = out or get_settings().resolved_data_dir / "dedup" / "sheets" / f"group-{group}.png"
    target = target.expanduser().absolute()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png)
    except OSError as exc:
        raise DataopsError(f"cannot write {target}: {exc.strerror or exc}") from exc
    data = {
        "group": detail.id,
        "path": str(target),
        "tiles": len(detail.members),
        "representative": detail.representative,
        "merged_into": detail.merged_into,
        "members": [m.model_dump() for m in detail.members],
    }

    def render() -> None:
        table(
            f"group {detail.id}",
            ["image", "distance", "stage", "size", "uri"],
            [
                [
                    m.image_id,
                    "rep" if m.image_id == detail.representative else m.distance,
                    m.stage or "",
                    f"{m.width}x{m.height}",
                    m.uri,
                ]
                for m in detail.members
            ],
        )
        if detail.merged_into is not None:
            console.print(f"merged into group {detail.merged_into}")
        console.print(str(target), highlight=False, markup=False, soft_wrap=True)

    emit(data, as_json, render)


@app.command("leaks")
def leaks(
    manifest: str | None = typer.Option(
        None, "--manifest", help="Splits from this manifest (name or sha256:...)."
    ),
    split_attr: str | None = typer.Option(
        None, "--split-attr", help="Splits from this image attribute, e.g. split."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Groups whose members sit in different splits; exits 1 when there is any."""
    from dataops.db import session_scope
    from dataops.dedup import leaks as dedup_leaks
    from dataops.manifests.leaks import manifest_leaks
    from dataops.migrate import ensure_ready

    dedup_leaks.check_source(manifest, split_attr)
    ensure_ready()
    with session_scope() as session:
        if manifest is not None:
            report = manifest_leaks(session, manifest)
        else:
            assert split_attr is not None
            report = dedup_leaks.attribute_leaks(session, split_attr)
    data = report.model_dump()

    def render() -> None:
        if not report.leaks:
            console.print(
                f"no leaks: {report.groups_checked} groups checked against {report.source}"
            )
            return
        table(
            f"{len(report.leaks)} groups straddle splits ({report.source})",
            ["group", "representative", "splits"],
            [
                [
                    leak.group_id,
                    leak.representative,
                    "; ".join(f"{name}: {ids}" for name, ids in leak.splits.items()),
                ]
                for leak in report.leaks
            ],
        )

    emit(data, as_json, render)
    if report.leaks:
        err_console.print(
            f"{len(report.leaks)} duplicate groups straddle splits: move each group to one split"
        )
        raise typer.Exit(EXIT_LEAKS)
