"""`dataops ingest` and `dataops images ...`."""

from __future__ import annotations

from pathlib import Path

import typer

from dataops.cli.jobrun import run_job
from dataops.cli.output import console, emit, table

images_app = typer.Typer(help="Browse the image catalog.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)


def _absolute_input(raw: str) -> str:
    if "://" in raw and not raw.startswith("file://"):
        return raw
    return str(Path(raw.removeprefix("file://")).expanduser().absolute())


_INGEST_COUNTS = ("files", "new", "skipped", "quarantined", "unreadable", "refused")


def ingest(
    paths: list[str] = typer.Argument(
        ...,
        help="Folders (recursive), globs, image files, .txt/.csv lists of paths/URIs, fsspec URLs.",
    ),
    source: str | None = typer.Option(
        None, "--source", help="Name the source these images came from."
    ),
    attributes: Path | None = typer.Option(
        None,
        "--attributes",
        help="CSV with a path/uri/file column and one column per attribute (device, site, locale...).",
    ),
    copy: bool = typer.Option(
        False, "--copy", help="Copy bytes into the blob store (default: reference)."
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="With a broker: wait for the worker."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Add images to the catalog: hash, validate, quarantine what cannot be decoded.

    Re-running on the same files is a no-op (reported as skipped); interrupted runs resume.
    """
    from pydantic import ValidationError

    from dataops.catalog.errors import IngestInputError
    from dataops.catalog.ingest import expand_inputs, read_attributes
    from dataops.catalog.schemas import IngestRequest

    try:
        request = IngestRequest(
            paths=[_absolute_input(p) for p in paths],
            source=source,
            copy_bytes=copy,
            attributes_csv=str(attributes.absolute()) if attributes else None,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "paths"
        name = {"copy": "copy_bytes"}.get(name, name)
        message = error["msg"].replace("{", "{{").replace("}", "}}")
        raise IngestInputError(f"{{{name}}}: {message}", fields=(name,)) from None
    expand_inputs(request.paths)  # fail fast on a missing path before any job is recorded
    read_attributes(request.attributes_csv)
    job = run_job("ingest", request.job_params(), description="ingest", wait=wait)
    data = {"job_id": job.id, **(job.result or {"status": job.status})}

    def render() -> None:
        table(
            "ingest",
            list(_INGEST_COUNTS),
            [[data.get(k, "") for k in _INGEST_COUNTS]],
        )
        for line in data.get("errors", [])[:20]:
            console.print(f"[yellow]not ingested:[/yellow] {line}", highlight=False)
        console.print(f"job {job.id}")

    emit(data, as_json, render)


def _parse_attrs(values: list[str]) -> dict[str, str]:
    from dataops.errors import DataopsError

    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DataopsError(f"--attribute expects KEY=VALUE, got {item!r}")
        out[key] = value
    return out


@images_app.command("list")
def list_images(
    status: str | None = typer.Option(None, "--status", help="ok or quarantined."),
    source: str | None = typer.Option(None, "--source"),
    attribute: list[str] = typer.Option([], "--attribute", "-a", help="KEY=VALUE, repeatable."),
    limit: int = typer.Option(100, "--limit", help="0 for all."),
    offset: int = typer.Option(0, "--offset"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List images with filters."""
    from dataops.catalog import service
    from dataops.catalog.schemas import ImageSummary
    from dataops.db import session_scope
    from dataops.errors import DataopsError
    from dataops.migrate import ensure_ready

    if status not in (None, "ok", "quarantined"):
        raise DataopsError(f"--status must be ok or quarantined, got {status!r}")
    ensure_ready()
    with session_scope() as session:
        rows = service.list_images(
            session,
            status=status,
            source=source,
            attribute=_parse_attrs(attribute),
            limit=limit or None,
            offset=offset,
        )
        images = [ImageSummary.model_validate(r).model_dump() for r in rows]
    emit(
        {"images": images},
        as_json,
        lambda: table(
            f"{len(images)} images",
            ["id", "sha256", "status", "uri", "reason"],
            [
                [i["id"], i["sha256"][:12], i["status"], i["uri"], i["quarantine_reason"]]
                for i in images
            ],
        ),
    )


@images_app.command("show")
def show_image(
    ref: str = typer.Argument(..., help="Image id, sha256 or a unique sha256 prefix."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Everything the catalog knows about one image."""
    from dataops.catalog import service
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready

    ensure_ready()
    with session_scope() as session:
        data = service.image_detail(session, service.get_image(session, ref)).model_dump(
            mode="json"
        )
    emit(
        data,
        as_json,
        lambda: table(None, ["field", "value"], [[k, v] for k, v in data.items()]),
    )
