"""`dataops manifest ...`: freeze, inspect, verify, compare and export manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from dataops.cli.jobrun import run_job
from dataops.cli.output import console, emit, err_console, table

app = typer.Typer(
    help="Immutable, content-addressed, train-ready manifests with leakage-safe splits.",
    no_args_is_help=True,
)

EXIT_PROBLEMS = 1


def _render_manifest(data: dict[str, Any]) -> None:
    splits = ", ".join(f"{k}={v}" for k, v in data["splits"].items())
    table(
        data["name"],
        ["id", "rows", "splits", "seed", "parent"],
        [
            [
                data["id"],
                data.get("row_count", data["rows"]),
                splits,
                data["seed"],
                data["parent"],
            ]
        ],
    )
    console.print(f"body: {data['path']}", highlight=False)
    for file_name, path in data.get("rows_files", {}).items():
        console.print(f"{file_name}: {path}", highlight=False)


def _batch_ids(text: str | None) -> list[int] | None:
    from dataops.errors import DataopsError
    from dataops.manifests.errors import escaped

    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise DataopsError(
            f"{{from_batches}} expects batch ids like 1,2, got {escaped(repr(text))}",
            fields=("from_batches",),
        ) from None


@app.command("create")
def create(
    name: str = typer.Argument(..., help="A new, unique name (letters, digits, . _ -)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the split draw (default 0)."),
    splits: str | None = typer.Option(
        None,
        "--splits",
        help="Split names and ratios, in order (default train=0.8,val=0.1,test=0.1).",
    ),
    from_batches: str | None = typer.Option(
        None, "--from-batches", help="Only images of these batches, e.g. 1,2."
    ),
    query: list[str] = typer.Option(
        [],
        "--query",
        "-q",
        help="KEY=VALUE, repeatable: source=NAME is the ingest source, any other key an attribute.",
    ),
    stratify_by: str | None = typer.Option(
        None,
        "--stratify-by",
        help="label or an attribute: report each stratum's split balance in the datasheet.",
    ),
    parent: str | None = typer.Option(
        None,
        "--parent",
        help="Previous generation: its images keep their split, new duplicates join them.",
    ),
    task: str | None = typer.Option(
        None,
        "--task",
        help="Labeling task whose labels to freeze (default: the task of --from-batches, else "
        "the only task with accepted labels).",
    ),
    exclude_label_issues: int | None = typer.Option(
        None,
        "--exclude-label-issues",
        metavar="RUN",
        help="Leave out the labels this label-quality run flagged (`dataops labels issues`).",
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="With a broker: wait for the worker."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Freeze the accepted labels into a new manifest: body, Parquet copy, datasheet, rows.

    Every labeled, non-quarantined image in scope gets its accepted label and a split; a
    whole duplicate group always lands in one split. The id is the sha256 of the body, so
    the same catalog, seed and splits give the same id.
    """
    from dataops.db import session_scope
    from dataops.manifests.create import check_request
    from dataops.manifests.schemas import ManifestRequest, parse_query
    from dataops.migrate import ensure_ready
    from dataops.selection.tasks import manifest_task

    request = ManifestRequest.of(
        {
            "name": name,
            "seed": seed,
            "splits": splits,
            "from_batches": _batch_ids(from_batches),
            "query": parse_query(query),
            "stratify_by": stratify_by,
            "parent": parent,
            "task": task,
            "exclude_label_issues": exclude_label_issues,
        }
    )
    ensure_ready()
    with session_scope() as session:  # fail fast, before a job is recorded
        checked = check_request(session, request)
        task = manifest_task(session, request.task, checked.batch_ids)
    params = request.model_copy(update={"task": task}).model_dump(mode="json")
    job = run_job("manifest", params, description=f"manifest {name}", wait=wait)
    data = {"job_id": job.id, **(job.result or {"status": job.status})}

    def render() -> None:
        if "id" not in data:
            console.print(f"job {job.id}: {data.get('status')}")
            return
        _render_manifest(data)

    emit(data, as_json, render)


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="Manifest name or id (sha256:...)."),
    limit: int = typer.Option(
        0, "--limit", help="Rows to list (0: all with --json, 20 in the table)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """A manifest's record and rows (sha256, split, label, duplicate group)."""
    from dataops.db import session_scope
    from dataops.manifests.service import get_manifest, manifest_detail
    from dataops.migrate import ensure_ready

    ensure_ready()
    shown = limit or (None if as_json else 20)
    with session_scope() as session:
        detail = manifest_detail(session, get_manifest(session, ref), limit=shown)
    data = detail.model_dump(mode="json")

    def render() -> None:
        _render_manifest(data)
        if len(data["names"]) > 1:
            console.print(f"same content as: {', '.join(data['names'])}", highlight=False)
        table(
            f"first {len(data['rows'])} of {data['row_count']} rows",
            ["sha256", "split", "label", "group"],
            [[r["sha256"][:16], r["split"], r["label"], r["dup_group_id"]] for r in data["rows"]],
        )

    emit(data, as_json, render)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
    """All manifests, oldest first."""
    from dataops.db import session_scope
    from dataops.manifests.service import list_manifests, manifest_out
    from dataops.migrate import ensure_ready

    ensure_ready()
    with session_scope() as session:
        items = [manifest_out(session, m).model_dump(mode="json") for m in list_manifests(session)]
    emit(
        {"manifests": items},
        as_json,
        lambda: table(
            f"{len(items)} manifests",
            ["name", "id", "rows", "splits", "parent", "created"],
            [
                [
                    m["name"],
                    m["id"][:19],
                    m["rows"],
                    ", ".join(f"{k}={v}" for k, v in m["splits"].items()),
                    m["parent"],
                    m["created_at"],
                ]
                for m in items
            ],
        ),
    )


@app.command("verify")
def verify(
    ref: str = typer.Argument(..., help="Manifest name or id (sha256:...)."),
    body_only: bool = typer.Option(
        False, "--body-only", help="Only re-hash the body (fast); skip Parquet and images."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Re-hash the body, the Parquet copy and every referenced image.

    Exit 0 when everything is intact, 1 with the reasons otherwise (tampered body, missing or
    changed images).
    """
    from dataops.cli.output import progress_bar
    from dataops.db import session_scope
    from dataops.manifests.verify import verify_manifest
    from dataops.migrate import ensure_ready

    ensure_ready()
    with session_scope() as session, progress_bar("verify images") as on_progress:
        report = verify_manifest(session, ref, body_only=body_only, progress=on_progress)
    data = report.model_dump(mode="json")

    def render() -> None:
        status = "[green]intact[/green]" if report.ok else "[red]FAILED[/red]"
        console.print(f"{report.name} {report.id}: {status}")
        for problem in report.problems:
            console.print(f"  {problem}", highlight=False)
        for item in [*report.changed, *report.missing][:20]:
            console.print(f"  {item.problem}: {item.location}", highlight=False)

    emit(data, as_json, render)
    if not report.ok:
        for problem in report.problems:
            err_console.print(f"[red]verify:[/red] {problem}", highlight=False)
        raise typer.Exit(EXIT_PROBLEMS)


@app.command("diff")
def diff(
    a: str = typer.Argument(..., help="Older manifest (name or id)."),
    b: str = typer.Argument(..., help="Newer manifest (name or id)."),
    limit: int = typer.Option(1000, "--limit", help="Entries per list (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Added, removed and relabelled images, split moves and class counts.

    A shared image that changed split, or a duplicate group of B across splits, is a leak:
    the diff is still printed and the exit status is 1.
    """
    from dataops.db import session_scope
    from dataops.manifests.diff import diff_manifests
    from dataops.migrate import ensure_ready

    ensure_ready()
    with session_scope() as session:
        report = diff_manifests(session, a, b, limit=limit or None)
    data = report.model_dump(mode="json")

    def render() -> None:
        table(
            f"{report.a} -> {report.b}",
            ["change", "images"],
            [[k, v] for k, v in report.counts.items()],
        )
        classes = sorted(
            {c for side in data["class_counts"].values() for s in side.values() for c in s}
        )
        table(
            "images per class (all splits)",
            ["class", report.a, report.b],
            [
                [
                    c,
                    sum(s.get(c, 0) for s in data["class_counts"]["a"].values()),
                    sum(s.get(c, 0) for s in data["class_counts"]["b"].values()),
                ]
                for c in classes
            ],
        )
        for move in report.split_moves[:20]:
            console.print(f"[red]leak:[/red] {move.sha256} {move.before} -> {move.after}")

    emit(data, as_json, render)
    if report.leak:
        err_console.print(
            f"[red]leak:[/red] {report.counts['split_moves']} shared images changed split, "
            f"{report.counts['straddling_groups']} duplicate groups straddle splits",
            highlight=False,
        )
        raise typer.Exit(EXIT_PROBLEMS)


@app.command("datasheet")
def datasheet(
    ref: str = typer.Argument(..., help="Manifest name or id (sha256:...)."),
    out: Path | None = typer.Option(
        None, "--out", help="Write NAME.datasheet.md and NAME.datasheet.json into this folder."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the datasheet as JSON."),
) -> None:
    """The manifest's datasheet (Markdown on stdout, or files with --out)."""
    import sys

    from dataops.db import session_scope
    from dataops.manifests.datasheet import to_json
    from dataops.manifests.service import get_manifest, read_datasheet
    from dataops.migrate import ensure_ready

    ensure_ready()
    with session_scope() as session:
        manifest = get_manifest(session, ref)
        name = manifest.name
        document, markdown = read_datasheet(manifest)
    written: list[str] = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for suffix, data in (("md", markdown.encode()), ("json", to_json(document))):
            path = out / f"{name}.datasheet.{suffix}"
            path.write_bytes(data)
            written.append(str(path.absolute()))

    def render() -> None:
        if written:
            for path in written:
                console.print(path, highlight=False)
        else:
            sys.stdout.write(markdown)

    emit({**document, "files": written}, as_json, render)


_EXPORT_COLUMNS = ("format", "rows", "linked", "copied", "written", "upright", "skipped")


@app.command("export")
def export(
    ref: str = typer.Argument(..., help="Manifest name or id (sha256:...)."),
    fmt: str = typer.Option(
        ...,
        "--format",
        help="folder (split/class/..., image classes), coco (boxes), rows "
        "(rows.jsonl and rows.parquet for table readers), voc (Pascal VOC, boxes) or cvat "
        "(CVAT for images 1.1 XML, boxes or image classes), yolo (ultralytics detection: "
        "images/, labels/, data.yaml), yolo-cls (ultralytics classification folders) or hf "
        "(Hugging Face datasets: data/<split>-*.parquet with images and typed labels, README.md).",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Destination folder: new, empty, or an earlier dataops export."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Write the manifest's images and labels for tools that do not read manifests.

    Images are hard-linked from a local blob store when possible (treat them as read-only),
    copied otherwise, and re-hashed on the way; EXIF-rotated photos are written upright. The
    export is staged beside --out and replaces it whole; stale files never survive.
    """
    from dataops.db import session_scope
    from dataops.manifests.exporting import export_manifest
    from dataops.migrate import ensure_ready

    ensure_ready()
    with session_scope() as session:
        result = export_manifest(session, ref, out, fmt=fmt)
    emit(
        result,
        as_json,
        lambda: table(
            f"{result['name']} -> {result['out']}",
            [*_EXPORT_COLUMNS],
            [[result[k] for k in _EXPORT_COLUMNS]],
        ),
    )


@app.command("verify-export")
def verify_export_command(
    folder: Path = typer.Argument(..., help="A folder written by `dataops manifest export`."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Re-hash an export's files against its index.jsonl; needs no catalog.

    Each file must match its listed sha256, and one that was not turned upright its catalog
    sha256 too. Exit 0 when intact, 1 with the reasons otherwise.
    """
    from dataops.manifests.export_target import verify_export

    problems = verify_export(folder)
    data = {"folder": str(folder.absolute()), "ok": not problems, "problems": problems}

    def render() -> None:
        status = "[green]intact[/green]" if not problems else "[red]FAILED[/red]"
        console.print(f"{data['folder']}: {status}", highlight=False)
        for problem in problems:
            console.print(f"  {problem}", highlight=False)

    emit(data, as_json, render)
    if problems:
        raise typer.Exit(EXIT_PROBLEMS)
