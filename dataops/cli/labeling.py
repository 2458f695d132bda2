"""`dataops vendors|queues|guidelines|annotators|labels ...`: the labeling side of the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from dataops.cli.output import console, emit, table

vendors_app = typer.Typer(help="Labeling vendors.", no_args_is_help=True)
queues_app = typer.Typer(
    help="Vendor queues: one guideline version, one Label Studio connection each.",
    no_args_is_help=True,
)
guidelines_app = typer.Typer(
    help="Versioned labeling guidelines (guidelines/<name>/v<N>.md).", no_args_is_help=True
)
annotators_app = typer.Typer(
    help="Annotators and their Label Studio accounts.", no_args_is_help=True
)
labels_app = typer.Typer(
    help="Append-only label versions: import, list, audit.", no_args_is_help=True
)

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON document.")


def register(app: typer.Typer) -> None:
    app.add_typer(vendors_app, name="vendors")
    app.add_typer(queues_app, name="queues")
    app.add_typer(guidelines_app, name="guidelines")
    app.add_typer(annotators_app, name="annotators")
    app.add_typer(labels_app, name="labels")


def _actor() -> str:
    from dataops.cli.jobrun import _actor as cli_actor

    return cli_actor()


def _ready() -> None:
    from dataops.migrate import ensure_ready

    ensure_ready()


# --- vendors ------------------------------------------------------------------------------


@vendors_app.command("create")
def vendors_create(
    name: str = typer.Argument(..., help="Vendor name (unique)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Register a labeling vendor; running it again returns the existing one."""
    from dataops.db import session_scope
    from dataops.labeling import vendors

    _ready()
    with session_scope() as session:
        vendor, created = vendors.create_vendor(session, name, actor=_actor())
        data = {
            **vendors.vendor_out(vendor).model_dump(mode="json", exclude={"queues", "annotators"}),
            "created": created,
        }
    emit(
        data,
        as_json,
        lambda: console.print(
            f"vendor {data['name']} (id {data['id']}){'' if created else ' already exists'}"
        ),
    )


@vendors_app.command("list")
def vendors_list(as_json: bool = JSON_OPTION) -> None:
    """Vendors with their queue and annotator counts."""
    from dataops.db import session_scope
    from dataops.labeling import vendors

    _ready()
    with session_scope() as session:
        rows = [v.model_dump(mode="json") for v in vendors.list_vendors(session)]
    emit(
        {"vendors": rows},
        as_json,
        lambda: table(
            f"{len(rows)} vendors",
            ["id", "name", "queues", "annotators"],
            [[v["id"], v["name"], v["queues"], v["annotators"]] for v in rows],
        ),
    )


# --- guidelines ---------------------------------------------------------------------------


@guidelines_app.command("publish")
def guidelines_publish(
    path: Path = typer.Argument(..., help="A guideline file, e.g. guidelines/clothing/v1.md."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Register a guideline version; its id is the sha256 of the file's bytes.

    The same bytes return the version already registered; a changed file becomes the next
    version number of its name.
    """
    from dataops.db import session_scope
    from dataops.labeling import guideline_versions

    _ready()
    with session_scope() as session:
        guideline, created = guideline_versions.publish_guideline(session, path, actor=_actor())
        data = {
            **guideline_versions.guideline_out(guideline).model_dump(mode="json"),
            "created": created,
            "path": str(path),
        }
    emit(
        data,
        as_json,
        lambda: console.print(
            f"guideline {data['ref']} sha256:{data['sha256'][:12]} "
            f"({'published' if created else 'already published'})"
        ),
    )


@guidelines_app.command("list")
def guidelines_list(
    name: str | None = typer.Option(None, "--name", help="Only versions of this guideline."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Every published guideline version."""
    from dataops.db import session_scope
    from dataops.labeling import guideline_versions

    _ready()
    with session_scope() as session:
        rows = [
            guideline_versions.guideline_out(g).model_dump(mode="json")
            for g in guideline_versions.list_guidelines(session, name)
        ]
    emit(
        {"guidelines": rows},
        as_json,
        lambda: table(
            f"{len(rows)} guideline versions",
            ["ref", "kind", "classes", "sha256", "published"],
            [
                [g["ref"], g["kind"], len(g["classes"]), g["sha256"][:12], g["created_at"]]
                for g in rows
            ],
        ),
    )


@guidelines_app.command("show")
def guidelines_show(
    ref: str = typer.Argument(..., help="NAME (newest version) or NAME:VERSION."),
    as_json: bool = JSON_OPTION,
) -> None:
    """One guideline version: classes, Label Studio config and the full text."""
    from dataops.db import session_scope
    from dataops.labeling import guideline_versions

    _ready()
    with session_scope() as session:
        data = guideline_versions.guideline_detail(
            guideline_versions.get_guideline(session, ref)
        ).model_dump(mode="json")

    def render() -> None:
        console.print(
            f"[bold]{data['ref']}[/bold] {data['kind']} sha256:{data['sha256']}", highlight=False
        )
        console.print(", ".join(data["classes"]), highlight=False)
        console.print(data["body"], markup=False, highlight=False)

    emit(data, as_json, render)


@guidelines_app.command("config")
def guidelines_config(
    path: Path = typer.Argument(..., help="A guideline file or folder (newest v<N>.md)."),
    write: bool = typer.Option(False, "--write", help="Write label_config.xml beside it."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The Label Studio labeling config a guideline implies (no database needed)."""
    from dataops.labeling import guidelines

    source = guidelines.newest_file(path) if path.is_dir() else path
    parsed, _ = guidelines.read_guideline(source)
    text = guidelines.config_file_text(parsed)
    target = source.parent / guidelines.LABEL_CONFIG_FILE
    if write:
        target.write_text(text, encoding="utf-8")
    data = {"path": str(source), "label_config": text, "written": str(target) if write else None}
    emit(data, as_json, lambda: console.print(text, markup=False, highlight=False, end=""))


# --- queues -------------------------------------------------------------------------------


@queues_app.command("create")
def queues_create(
    name: str = typer.Argument(..., help="Queue name (unique)."),
    vendor: str = typer.Option(..., "--vendor", help="Vendor name or id."),
    guideline: str = typer.Option(
        ..., "--guideline", help="NAME (newest version, then pinned) or NAME:VERSION."
    ),
    overlap: float = typer.Option(
        0.0, "--overlap", help="Share of items labeled by 2+ annotators (0..1)."
    ),
    gold: float = typer.Option(0.0, "--gold", help="Share of gold (honeypot) items (0..0.5)."),
    due: str | None = typer.Option(None, "--due", help="Turnaround, e.g. 3d, 12h, 2w."),
    connection: str = typer.Option(
        "default",
        "--connection",
        help="Label Studio instance: 'default' or a name from DATAOPS_LABELSTUDIO_CONNECTIONS.",
    ),
    on_reject: str = typer.Option(
        "relabel_failed",
        "--on-reject",
        help="Rejected batch: relabel_failed (failed items relabeled, the rest released), "
        "relabel_all or release.",
    ),
    relabel_answers: int = typer.Option(
        3, "--relabel-answers", help="Answers asked for each relabel item."
    ),
    relabel_agree: int = typer.Option(
        2, "--relabel-agree", help="Matching answers that accept a relabel item (2 of 3)."
    ),
    relabel_rounds: int = typer.Option(
        2, "--relabel-rounds", help="Relabel batches at most in a chain; then items are released."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a vendor queue pinned to one guideline version.

    Label Studio OSS has no per-project permissions: a vendor that must not see other
    vendors' work gets its own Label Studio instance (a named --connection). A new guideline
    version needs a new queue; a queue's guideline never changes.
    """
    from dataops.db import session_scope
    from dataops.labeling import queues

    due_days = queues.parse_due(due) if due is not None else None
    _ready()
    with session_scope() as session:
        queue, created = queues.create_queue(
            session,
            name,
            vendor=vendor,
            guideline=guideline,
            overlap=overlap,
            gold=gold,
            due_days=due_days,
            connection=connection,
            on_reject=on_reject,
            relabel_answers=relabel_answers,
            relabel_agree=relabel_agree,
            relabel_rounds=relabel_rounds,
            actor=_actor(),
        )
        data = {**queues.queue_out(session, queue).model_dump(mode="json"), "created": created}
    emit(
        data,
        as_json,
        lambda: console.print(
            f"queue {data['name']} (id {data['id']}) for {data['vendor']}, guideline "
            f"{data['guideline']}, connection {data['connection']}"
            f"{'' if created else ' already exists'}"
        ),
    )


def _queue_rows(queues: list[dict[str, Any]]) -> None:
    table(
        f"{len(queues)} queues",
        ["id", "name", "vendor", "guideline", "connection", "overlap", "gold", "due", "batches"],
        [
            [
                q["id"],
                q["name"],
                q["vendor"],
                q["guideline"],
                q["connection"],
                q["overlap"],
                q["gold"],
                q["due_days"],
                q["batches"],
            ]
            for q in queues
        ],
    )


@queues_app.command("list")
def queues_list(
    vendor: str | None = typer.Option(None, "--vendor", help="Only this vendor's queues."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Queues with their vendor, pinned guideline version and connection."""
    from dataops.db import session_scope
    from dataops.labeling import queues

    _ready()
    with session_scope() as session:
        rows = [
            queues.queue_out(session, q).model_dump(mode="json")
            for q in queues.list_queues(session, vendor=vendor)
        ]
    emit({"queues": rows}, as_json, lambda: _queue_rows(rows))


@queues_app.command("show")
def queues_show(
    ref: str = typer.Argument(..., help="Queue name or id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """One queue's settings."""
    from dataops.db import session_scope
    from dataops.labeling import queues

    _ready()
    with session_scope() as session:
        data = queues.queue_out(session, queues.get_queue(session, ref)).model_dump(mode="json")
    emit(data, as_json, lambda: table(None, ["field", "value"], [[k, v] for k, v in data.items()]))


# --- annotators ---------------------------------------------------------------------------


@annotators_app.command("list")
def annotators_list(
    vendor: str | None = typer.Option(None, "--vendor"),
    connection: str | None = typer.Option(None, "--connection"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Annotators, their vendor and Label Studio account, and how the mapping was made."""
    from dataops.db import session_scope
    from dataops.labeling import annotators

    _ready()
    with session_scope() as session:
        rows = [
            a.model_dump(mode="json")
            for a in annotators.list_annotators(session, vendor=vendor, connection=connection)
        ]
    emit(
        {"annotators": rows},
        as_json,
        lambda: table(
            f"{len(rows)} annotators",
            ["id", "name", "email", "vendor", "connection", "ls user", "mapped by"],
            [
                [
                    a["id"],
                    a["name"],
                    a["email"],
                    a["vendor"],
                    a["connection"],
                    a["ls_user_id"],
                    a["mapped_by"],
                ]
                for a in rows
            ],
        ),
    )


@annotators_app.command("map")
def annotators_map(
    connection: str = typer.Option(..., "--connection", help="The Label Studio instance."),
    vendor: str = typer.Option(..., "--vendor", help="The vendor the person works for."),
    email: str = typer.Option(..., "--email"),
    ls_user_id: int = typer.Option(..., "--ls-user-id", help="Their user id on that instance."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Tie a Label Studio account to a person and vendor, explicitly."""
    from dataops.db import session_scope
    from dataops.labeling import annotators

    _ready()
    with session_scope() as session:
        annotator = annotators.map_annotator(
            session,
            connection=connection,
            vendor=vendor,
            email=email,
            ls_user_id=ls_user_id,
            actor=_actor(),
        )
        data = annotators.annotator_out(session, annotator).model_dump(mode="json")
    emit(
        data,
        as_json,
        lambda: console.print(
            f"annotator {data['name']} = Label Studio user {data['ls_user_id']} on "
            f"{data['connection']} ({data['vendor']})"
        ),
    )


# --- labels -------------------------------------------------------------------------------


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
    connection: str = typer.Option(
        "default", "--connection", help="The Label Studio instance a JSON export came from."
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

    try:
        data = file.read_bytes()
    except OSError as exc:
        raise LabelFileError(f"cannot read {file}: {exc.strerror or exc}") from None
    _ready()
    if fmt == "cvat" or (fmt is None and file.suffix.lower() == ".xml"):
        from dataops.labeling.cvat_import import import_cvat

        with session_scope() as session:
            report = import_cvat(
                session,
                data,
                filename=file.name,
                annotator=annotator,
                accept=accept,
                task=task,
                guideline=guideline,
                vendor=vendor,
                actor=_actor(),
            )
    else:
        with session_scope() as session:
            report = imports.import_labels(
                session,
                data,
                filename=file.name,
                fmt=fmt,
                accept=accept,
                task=task,
                guideline=guideline,
                vendor=vendor,
                connection=connection,
                base_dir=file.absolute().parent,
                path_map=path_map,
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
    limit: int = typer.Option(1000, "--limit", help="0 for all."),
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
        raise DataopsError(f"--status must be one of {', '.join(allowed)}, got {status!r}")
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
            limit=limit or None,
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
