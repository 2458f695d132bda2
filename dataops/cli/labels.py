"""`dataops labels import|list|status`: append-only label versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from dataops.cli.output import console, emit, table

labels_app = typer.Typer(
    help="Append-only label versions: import, list, audit.", no_args_is_help=True
)

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON document.")


def _actor() -> str:
    from dataops.cli.jobrun import _actor as cli_actor

    return cli_actor()


def _ready() -> None:
    from dataops.migrate import ensure_ready

    ensure_ready()


@labels_app.command("import")
def labels_import(
    file: Path = typer.Argument(
        ..., help="A CSV (image,annotator,label), Label Studio JSON or CVAT for images 1.1 XML."
    ),
    fmt: str | None = typer.Option(
        None,
        "--format",
        help="csv, labelstudio or cvat (default: from the extension or content).",
    ),
    annotator: str | None = typer.Option(
        None, "--annotator", help="Who made the labels of a CVAT export (name or email)."
    ),
    accept: bool = typer.Option(
        False, "--accept", help="Labels vetted elsewhere: store them as accepted."
    ),
    task: str | None = typer.Option(
        None, "--task", help="Labeling task name (default: the guideline's name, else default)."
    ),
    guideline: str | None = typer.Option(
        None, "--guideline", help="Check labels against this guideline (NAME[:VERSION])."
    ),
    vendor: str | None = typer.Option(None, "--vendor", help="The vendor the annotators work for."),
    connection: str | None = typer.Option(
        None,
        "--connection",
        help="The Label Studio instance a JSON export came from (default: 'default').",
    ),
    path_map: list[str] = typer.Option(
        [],
        "--path-map",
        help="PREFIX=ROOT, repeatable: a Label Studio image path starting with PREFIX is looked "
        "up as ROOT + the rest (e.g. /data/upload/=/srv/label-studio/media/upload/).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Import labels, all or nothing: any bad row is reported and nothing is stored.

    Re-importing the same file creates nothing. CSV images are a sha256 or any path/uri they
    were ingested from (relative paths are read from the CSV's folder). Label Studio JSON
    exports (not JSON_MIN) find images by the task key dataops pushed, data.dataops_sha256, or
    data.image through --path-map; a result dataops cannot store (a polygon, a key point,
    free text) refuses the file. CVAT for images 1.1 XML needs --annotator; its images are the
    sha256 names `manifest export --format cvat` writes, or file names ingested before.
    """
    from dataops.db import session_scope
    from dataops.labeling import imports
    from dataops.labeling.errors import LabelFileError, LabelImportRejected
    from dataops.labeling.schemas import LabelImportOptions, parse_request

    try:
        data = file.read_bytes()
    except OSError as exc:
        raise LabelFileError(f"cannot read {file}: {exc.strerror or exc}") from None
    given: dict[str, Any] = {"format": fmt, "annotator": annotator, "task": task}
    given.update(guideline=guideline, vendor=vendor, connection=connection)
    given.update(path_map=path_map or None)
    request = parse_request(
        LabelImportOptions,
        {"accept": accept, **{field: value for field, value in given.items() if value is not None}},
    )
    _ready()
    with session_scope() as session:
        report = imports.import_labels(
            session,
            data,
            request,
            filename=file.name,
            base_dir=file.absolute().parent,
            actor=_actor(),
        )
    out = report.model_dump(mode="json")

    def render() -> None:
        table(
            f"labels import {file.name}",
            ["rows", "created", "existing", "skipped", "errors"],
            [[out["rows"], out["created"], out["existing"], out["skipped"], len(out["errors"])]],
        )
        for error in out["errors"][:50]:
            where = f"line {error['line']}" if error["line"] else f"task {error['row']}"
            console.print(
                f"[yellow]{where}[/yellow] {error['field']}: {error['message']}", highlight=False
            )

    emit(out, as_json, render)
    if report.errors:
        raise LabelImportRejected(
            f"{len(report.errors)} problems in {file.name}; nothing was imported — fix them and "
            "import the file again"
        )


@labels_app.command("list")
def labels_list(
    image: str | None = typer.Option(None, "--image", help="Image id, sha256 or prefix."),
    batch: int | None = typer.Option(None, "--batch", help="Batch id."),
    status: str | None = typer.Option(
        None, "--status", help="submitted, accepted, rejected, adjudicated, released or deleted."
    ),
    task: str | None = typer.Option(None, "--task"),
    live: bool = typer.Option(False, "--live", help="Only each annotator's current version."),
    limit: int | None = typer.Option(
        None, "--limit", help="At most this many (default 1000); 0 for all."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Label versions, oldest first; `supersedes_id` links an edit to the version it replaced."""
    from dataops.catalog.service import get_image
    from dataops.db import session_scope
    from dataops.errors import DataopsError
    from dataops.labeling import labels
    from dataops.labeling.models import DELETED

    allowed = (*labels.LABEL_STATUSES, DELETED)
    if status is not None and status not in allowed:
        shown = repr(status).replace("{", "{{").replace("}", "}}")
        raise DataopsError(
            f"{{status}} must be one of {', '.join(allowed)}, got {shown}", fields=("status",)
        )
    _ready()
    with session_scope() as session:
        image_id = get_image(session, image).id if image else None
        versions = labels.list_labels(
            session,
            image_id=image_id,
            batch_id=batch,
            status=status,
            task=task,
            live=live,
            limit=labels.LIST_LIMIT if limit is None else (limit or None),
        )
        rows = [v.model_dump(mode="json") for v in labels.label_outs(session, versions)]
    emit(
        {"labels": rows},
        as_json,
        lambda: table(
            f"{len(rows)} label versions",
            ["id", "image", "annotator", "task", "label", "status", "supersedes", "source"],
            [
                [
                    r["id"],
                    r["sha256"][:12],
                    r["annotator"],
                    r["task"],
                    r["payload"].get("class", f"{len(r['payload'].get('boxes', []))} boxes"),
                    r["status"],
                    r["supersedes_id"],
                    r["source"],
                ]
                for r in rows
            ],
        ),
    )


@labels_app.command("status")
def labels_status(
    version_id: int = typer.Argument(..., help="Label version id."),
    status: str = typer.Argument(..., help="accepted, rejected, adjudicated or released."),
    reason: str | None = typer.Option(None, "--reason", help="Why, for the audit log."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Record an audit verdict on a live label version."""
    from dataops.db import session_scope
    from dataops.labeling import labels

    _ready()
    with session_scope() as session:
        version = labels.set_status(session, version_id, status, actor=_actor(), reason=reason)
        [data] = [v.model_dump(mode="json") for v in labels.label_outs(session, [version])]
    emit(data, as_json, lambda: console.print(f"label version {version_id}: {data['status']}"))


def _register_issues() -> None:
    from dataops.cli.quality import labels_issues

    labels_app.command("issues")(labels_issues)


_register_issues()
