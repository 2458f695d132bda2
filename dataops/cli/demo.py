"""`dataops demo`: the whole pipeline on the embedded catalog, end to end.

The demo is a list of steps (``STEPS``); each reads and extends one ``DemoRun`` and adds a row
to the summary table. Steps marked ``builtin_only`` need the labeled digits of the built-in
set and are skipped for a user's folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from dataops.cli.output import console, emit, err_console, table

DEMO_MODEL = "demo-digits"
SEED_PER_CLASS = 15
TRAIN_EPOCHS = 20
ACTIVE_LEARNING = {"strategy": "margin", "size": 20}
HARD_NEGATIVES = {"strategy": "hard_negative", "size": 10, "class_name": "3", "mode": "unlabeled"}


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@dataclass
class DemoRun:
    """What the steps share: the image folder, the JSON summary and the table rows."""

    path: Path
    builtin: bool
    summary: dict[str, Any] = field(default_factory=dict)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[DemoRun], None]
    builtin_only: bool = False


def _ingest(run: DemoRun) -> None:
    from dataops.catalog import service
    from dataops.cli.jobrun import run_job
    from dataops.db import session_scope

    job = run_job(
        "ingest", {"paths": [str(run.path.absolute())], "source": "demo"}, description="ingest"
    )
    result = job.result or {}
    with session_scope() as session:
        statuses = service.status_counts(session)
        reasons = service.quarantine_reasons(session)
    run.summary |= {
        "ingest": result,
        "catalog": statuses,
        "quarantined": [{"uri": u, "reason": r} for u, r in reasons],
    }
    run.rows += [
        [
            "ingest",
            f"{result.get('files')} files: {result.get('new')} new, {result.get('skipped')} "
            f"skipped, {result.get('quarantined')} quarantined",
        ],
        ["catalog", ", ".join(f"{k}={v}" for k, v in sorted(statuses.items()))],
    ]
    run.notes += [f"[yellow]quarantined[/yellow] {uri}: {reason}" for uri, reason in reasons]


def _seed_set(labels_csv: Path) -> tuple[list[Path], list[int]]:
    """The first SEED_PER_CLASS labeled digits of each class: the model's starting data."""
    import csv

    paths: list[Path] = []
    labels: list[int] = []
    taken: dict[int, int] = {}
    with labels_csv.open(newline="") as fh:
        for row in csv.DictReader(fh):
            cls = int(row["label"])
            if taken.get(cls, 0) < SEED_PER_CLASS:
                taken[cls] = taken.get(cls, 0) + 1
                paths.append(Path(row["image"]))
                labels.append(cls)
    return paths, labels


def _train(run: DemoRun) -> None:
    """Train the tiny CNN on a seed set of labeled digits, export it and register it."""
    import time

    from PIL import Image

    from dataops.cli.jobrun import _actor
    from dataops.config import get_settings
    from dataops.db import session_scope
    from dataops.scoring import service, tinycnn
    from dataops.scoring.inference import InputSpec
    from dataops.scoring.register import register_model

    spec = InputSpec(size=(32, 32), mean=(0.5,), std=(0.25,), channels=1)
    paths, labels = _seed_set(run.path / "digits_labels.csv")
    images = []
    for path in paths:
        with Image.open(path) as img:
            images.append(img.convert("L"))
    started = time.monotonic()
    err_console.print(f"training a tiny CNN on {len(images)} labeled digits ...")
    model = tinycnn.train(images, labels, num_classes=10, spec=spec, epochs=TRAIN_EPOCHS)
    seconds = time.monotonic() - started
    model_path = get_settings().resolved_data_dir / "demo" / f"{DEMO_MODEL}.pt"
    model_path.parent.mkdir(parents=True, exist_ok=True)
    tinycnn.export_torchscript(model, model_path, spec)
    with session_scope() as session:
        mv, created = register_model(
            session,
            model_path,
            name=DEMO_MODEL,
            classes=[str(c) for c in range(10)],
            actor=_actor(),
        )
        ref = service.ref_of(mv)
    run.summary["model"] = {
        "ref": ref,
        "created": created,
        "trained_on": len(images),
        "train_seconds": round(seconds, 1),
    }
    run.rows.append(
        ["model", f"{ref}: tiny CNN trained on {len(images)} labeled digits in {seconds:.1f} s"]
    )


def _score(run: DemoRun) -> None:
    from dataops.cli.jobrun import run_job

    ref = run.summary["model"]["ref"]
    result = run_job("score", {"model": ref}, description=f"score {ref}").result or {}
    run.summary["score"] = result
    rate = result.get("images_per_s")
    run.rows.append(
        [
            "score",
            f"{result.get('scored')} images scored on {result.get('device')}"
            + (f" ({rate} images/s)" if rate else "")
            + f", {result.get('already_scored')} already scored",
        ]
    )


def _select(run: DemoRun, key: str, request: dict[str, Any]) -> None:
    from dataops.cli.jobrun import run_job
    from dataops.errors import DataopsError

    params = {"model": run.summary["model"]["ref"], **request}
    try:
        batch = run_job("select", params, description=f"select {request['strategy']}").result
    except DataopsError as exc:  # e.g. a re-run after every image was handed out
        run.summary[key] = {"error": str(exc)}
        run.rows.append([key.replace("_", " "), f"none: {exc}"])
        return
    assert batch is not None
    items = batch["items"]
    run.summary[key] = {
        "batch_id": batch["id"],
        "strategy": batch["strategy"],
        "size": batch["size"],
        "eligible": batch["params"].get("eligible"),
        "image_ids": [i["image_id"] for i in items],
    }
    digits = sum(1 for i in items if "/digits/" in i["uri"])
    what = f" for class {request['class_name']!r}" if "class_name" in request else ""
    run.rows.append(
        [
            key.replace("_", " "),
            f"batch {batch['id']}: {batch['size']} images by {batch['strategy']}{what} "
            f"({digits} digits, {batch['size'] - digits} photos) of "
            f"{batch['params'].get('eligible')} eligible",
        ]
    )


def _dedup(run: DemoRun) -> None:
    from dataops.cli.jobrun import run_job

    result = run_job("dedup", {}, description="dedup").result or {}
    run.summary["dedup"] = result
    run.rows.append(
        [
            "dedup",
            f"{result.get('pairs')} near-duplicate pairs in {result.get('groups')} groups "
            f"over {result.get('images')} images (`dataops dedup groups`)",
        ]
    )


def _labels(run: DemoRun) -> None:
    """The digits' true labels, imported as accepted: the labels a manifest freezes."""
    from dataops.cli.jobrun import _actor
    from dataops.db import session_scope
    from dataops.errors import DataopsError
    from dataops.labeling import service
    from dataops.labeling.schemas import LabelImportOptions

    labels_csv = run.path / "digits_labels.csv"
    with session_scope() as session:
        report = service.import_labels(
            session,
            labels_csv.read_bytes(),
            LabelImportOptions(format="csv", accept=True),
            filename=str(labels_csv),
            base_dir=run.path,
            actor=_actor(),
        )
        if report.errors:
            raise DataopsError(f"{labels_csv}: {report.errors[0]}")
    run.summary["labels"] = report.model_dump()
    run.rows.append(
        [
            "labels",
            f"{report.rows} accepted digit labels: {report.created} new, {report.existing} existing",
        ]
    )


def _manifest(run: DemoRun) -> None:
    """Freeze the accepted labels into a manifest, write its datasheet and verify it."""
    from dataops.cli.jobrun import run_job
    from dataops.db import session_scope
    from dataops.manifests import service
    from dataops.manifests.verify import verify_manifest

    with session_scope() as session:
        existing = [m.name for m in service.list_manifests(session)]
    # each demo run on the same catalog freezes a new generation under a new name
    name = next(
        f"demo-digits-{i}"
        for i in range(1, len(existing) + 2)
        if f"demo-digits-{i}" not in existing
    )
    created = run_job("manifest", {"name": name, "seed": 0}, description="manifest").result or {}
    with session_scope() as session:
        report = verify_manifest(session, name)
        _, markdown = service.read_datasheet(service.get_manifest(session, name))
    run.summary["manifest"] = {
        **created,
        "verified": report.ok,
        "datasheet_lines": markdown.count("\n"),
    }
    splits = ", ".join(f"{k}={v}" for k, v in (created.get("splits") or {}).items())
    run.rows += [
        ["manifest", f"{name} {created.get('id')}: {created.get('rows')} rows ({splits})"],
        [
            "verify",
            f"{'intact' if report.ok else 'FAILED'}: body + {report.images_checked} images re-hashed; "
            f"datasheet: `dataops manifest datasheet {name}`",
        ],
    ]


STEPS: list[Step] = [
    Step("ingest", _ingest),
    Step("dedup", _dedup),
    Step("train", _train, builtin_only=True),
    Step("score", _score, builtin_only=True),
    Step(
        "active learning",
        lambda run: _select(run, "active_learning", ACTIVE_LEARNING),
        builtin_only=True,
    ),
    Step(
        "hard negatives",
        lambda run: _select(run, "hard_negatives", HARD_NEGATIVES),
        builtin_only=True,
    ),
    Step("labels", _labels, builtin_only=True),
    Step("manifest", _manifest, builtin_only=True),
]


def demo(
    path: Path | None = typer.Argument(
        None, help="A folder of images to use instead of the built-in demo set."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run the pipeline on a demo set and print a summary.

    With no PATH it builds a demo set from images that ship with scikit-learn (so it works on a
    fresh machine with no extra files), trains a tiny CNN on a few labeled digits, scores the
    catalog, selects an active-learning batch and a hard-negative batch, imports the digits'
    true labels as accepted, and freezes them into a verified manifest with a datasheet. With a
    PATH it ingests and deduplicates that folder.
    """
    from dataops import migrate
    from dataops.catalog.demo_data import build_demo_set
    from dataops.config import get_settings
    from dataops.errors import DataopsError

    migrate.upgrade()
    builtin = path is None
    if path is None:
        path = get_settings().resolved_data_dir / "demo-images"
        counts = build_demo_set(path)
        err_console.print(f"demo set: {counts} under {path}")
    elif not path.is_dir():
        raise DataopsError(f"{path}: not a folder")
    run = DemoRun(path=path, builtin=builtin)
    for step in STEPS:
        if step.builtin_only and not builtin:
            continue
        err_console.print(f"[bold]{step.name}[/bold]")
        step.run(run)

    def render() -> None:
        table("dataops demo", ["step", "result"], run.rows)
        for line in run.notes:
            console.print(line, highlight=False)

    emit(run.summary, as_json, render)
