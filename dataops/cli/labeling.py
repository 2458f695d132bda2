"""`dataops vendors|queues|guidelines|annotators ...`: the labeling side of the catalog
(`labels ...` is :mod:`dataops.cli.labels`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from dataops.cli.labels import labels_app
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
    overlap: float | None = typer.Option(
        None, "--overlap", help="Share of items labeled by 2+ annotators (0..1; default 0)."
    ),
    gold: float | None = typer.Option(
        None, "--gold", help="Share of gold (honeypot) items (0..0.5; default 0)."
    ),
    due: str | None = typer.Option(None, "--due", help="Turnaround, e.g. 3d, 12h, 2w."),
    connection: str | None = typer.Option(
        None,
        "--connection",
        help="Label Studio instance: 'default' (the default) or a name from "
        "DATAOPS_LABELSTUDIO_CONNECTIONS.",
    ),
    on_reject: str | None = typer.Option(
        None,
        "--on-reject",
        help="Rejected batch: relabel_failed (the default: failed items relabeled, the rest "
        "released), relabel_all or release.",
    ),
    relabel_answers: int | None = typer.Option(
        None, "--relabel-answers", help="Answers asked for each relabel item (default 3)."
    ),
    relabel_agree: int | None = typer.Option(
        None,
        "--relabel-agree",
        help="Matching answers that accept a relabel item (default 2, of 3).",
    ),
    relabel_rounds: int | None = typer.Option(
        None,
        "--relabel-rounds",
        help="Relabel batches at most in a chain; then items are released (default 2).",
    ),
    accept_rule: str | None = typer.Option(
        None,
        "--accept-rule",
        help="Accepted label of items without gold: majority (the default) or consensus (CROWDLAB, "
        "weighed by annotator skill and the model that scored the batch).",
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

    given = {
        "overlap": overlap,
        "gold": gold,
        "due": due,
        "connection": connection,
        "on_reject": on_reject,
        "relabel_answers": relabel_answers,
        "relabel_agree": relabel_agree,
        "relabel_rounds": relabel_rounds,
        "accept_rule": accept_rule,
    }
    request = queues.queue_request(
        name=name,
        vendor=vendor,
        guideline=guideline,
        **{field: value for field, value in given.items() if value is not None},
    )
    _ready()
    with session_scope() as session:
        queue, created = queues.create_queue(session, request, actor=_actor())
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
    from dataops.labeling.schemas import AnnotatorMap, parse_request

    values = {"connection": connection, "vendor": vendor, "email": email}
    request = parse_request(AnnotatorMap, {**values, "ls_user_id": ls_user_id})
    _ready()
    with session_scope() as session:
        annotator = annotators.map_annotator(session, request, actor=_actor())
        data = annotators.annotator_out(session, annotator).model_dump(mode="json")
    emit(
        data,
        as_json,
        lambda: console.print(
            f"annotator {data['name']} = Label Studio user {data['ls_user_id']} on "
            f"{data['connection']} ({data['vendor']})"
        ),
    )


def _share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


@annotators_app.command("report")
def annotators_report(
    since: str = typer.Option("", "--since", help="Start (inclusive), e.g. 2026-11-01."),
    until: str = typer.Option("", "--until", help="End (not included); default: now."),
    group: str = typer.Option("annotator", "--group", help="annotator or vendor."),
    sort: str = typer.Option("name", "--sort", help="The column to order the rows by."),
    descending: bool = typer.Option(False, "--descending", help="Largest first."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Also write the rows to this CSV."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Throughput, time per answer, turnaround, gold accuracy, agreement, first-pass acceptance
    and rework per annotator or vendor over a period (default: the last 30 days)."""
    from dataops.db import session_scope
    from dataops.performance import export
    from dataops.performance.service import performance_report, request_from_query

    values = {"since": since, "until": until, "group": group, "sort": sort}
    request = request_from_query({**values, "descending": "true" if descending else ""})
    _ready()
    with session_scope() as session:
        report = performance_report(session, request)
    if csv_path is not None:
        csv_path.write_text(export.to_csv(report), encoding="utf-8")
    data = report.model_dump(mode="json")
    emit(
        data,
        as_json,
        lambda: table(
            f"{len(report.rows)} {report.group}s, {report.since:%Y-%m-%d %H:%M} to "
            f"{report.until:%Y-%m-%d %H:%M} UTC",
            [
                report.group,
                "vendor",
                "answers",
                "per day",
                "median s",
                "push→answer h",
                "late",
                "gold (95 % CI)",
                "kappa (pairs)",
                "first pass",
                "rework",
            ],
            [
                [
                    r.name,
                    r.vendor or "",
                    r.answers,
                    _number(r.answers_per_day),
                    _number(r.median_lead_time_s, 1),
                    _number(r.median_turnaround_h, 1),
                    _share(r.late_share),
                    f"{_share(r.gold_accuracy)} ({_share(r.gold_ci_low)}–{_share(r.gold_ci_high)})"
                    if r.gold_answers
                    else "—",
                    f"{_number(r.kappa, 3)} ({r.kappa_pairs})" if r.kappa_pairs else "—",
                    _share(r.first_pass_acceptance),
                    _share(r.rework_rate),
                ]
                for r in report.rows
            ],
        ),
    )
