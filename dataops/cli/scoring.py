"""`dataops model ...` (the registry) and `dataops score` (batch inference)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from dataops.cli.jobrun import run_job
from dataops.cli.output import console, emit, table

if TYPE_CHECKING:
    from dataops.scoring.inference import InputSpec

model_app = typer.Typer(
    help="Register TorchScript models and choose the current version.", no_args_is_help=True
)

_COLUMNS = ["ref", "current", "classes", "input", "embedding", "predictions", "sha256"]


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
    app.command("score")(score)


def _floats(text: str | None, option: str) -> tuple[float, ...] | None:
    from dataops.scoring.errors import InvalidModel

    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError as exc:
        raise InvalidModel(f"{option} expects comma-separated numbers, got {text!r}") from exc


def _size(text: str) -> tuple[int, int]:
    from dataops.scoring.errors import InvalidModel

    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
        raise InvalidModel(f"--input-size expects N or HEIGHTxWIDTH, got {text!r}")
    height, width = (int(parts[0]), int(parts[-1]))
    return height, width


def _input_spec(
    size: str | None, mean: str | None, std: str | None, channels: int | None
) -> InputSpec | None:
    """The spec from the options, or None to use the one stored inside the file."""
    from pydantic import ValidationError

    from dataops.scoring.errors import InvalidModel
    from dataops.scoring.inference import InputSpec

    if size is None:
        if mean is not None or std is not None or channels is not None:
            raise InvalidModel("--mean, --std and --channels need --input-size as well")
        return None
    means, stds = _floats(mean, "--mean"), _floats(std, "--std")
    n = channels or len(means or stds or ()) or 3
    try:
        return InputSpec(
            size=_size(size), mean=means or (0.0,) * n, std=stds or (1.0,) * n, channels=n
        )
    except ValidationError as exc:
        problems = "; ".join(e["msg"] for e in exc.errors())
        raise InvalidModel(f"invalid input spec: {problems}") from exc


def _row(m: dict[str, Any]) -> list[Any]:
    spec = m["input_spec"]
    return [
        m["ref"],
        "*" if m["is_current"] else "",
        ",".join(m["classes"]),
        f"{spec['channels']}x{spec['size'][0]}x{spec['size'][1]}",
        "yes" if m["has_embedding"] else "no",
        m["predictions"],
        m["sha256"][:12],
    ]


@model_app.command("register")
def register_model(
    file: Path = typer.Argument(..., help="A TorchScript file (torch.jit.script/trace + save)."),
    name: str = typer.Option(..., "--name", help="Model name; versions are numbered per name."),
    classes: str = typer.Option(
        ..., "--classes", help="Class names in output order, comma-separated."
    ),
    input_size: str | None = typer.Option(
        None,
        "--input-size",
        help="N or HEIGHTxWIDTH; without it the spec stored in the file is used.",
    ),
    mean: str | None = typer.Option(
        None, "--mean", help="Per-channel mean of [0, 1] pixels, comma-separated (default 0)."
    ),
    std: str | None = typer.Option(
        None, "--std", help="Per-channel standard deviation, comma-separated (default 1)."
    ),
    channels: int | None = typer.Option(
        None, "--channels", help="1 (grayscale) or 3 (RGB); default from --mean, else 3."
    ),
    current: bool = typer.Option(
        True, "--current/--no-current", help="Make the new version the current one."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Store a model file by sha256 as the next version of NAME (same bytes: same version)."""
    from dataops.cli.jobrun import _actor as actor
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready
    from dataops.scoring import service
    from dataops.scoring.register import register_model

    spec = _input_spec(input_size, mean, std, channels)
    ensure_ready()
    with session_scope() as session:
        mv, created = register_model(
            session,
            file,
            name=name,
            classes=classes,
            input_spec=spec,
            make_current=current,
            actor=actor(),
        )
        data = {"created": created, **service.model_out(mv).model_dump(mode="json")}

    def render() -> None:
        table("model registered" if created else "already registered", _COLUMNS, [_row(data)])

    emit(data, as_json, render)


@model_app.command("list")
def list_models(
    name: str | None = typer.Option(None, "--name", help="Only versions of this model."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Every registered version with its classes, input spec and how many images it scored."""
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready
    from dataops.scoring import service

    ensure_ready()
    with session_scope() as session:
        models = [m.model_dump(mode="json") for m in service.list_models(session, name)]
    emit(
        {"models": models},
        as_json,
        lambda: table(f"{len(models)} model versions", _COLUMNS, [_row(m) for m in models]),
    )


@model_app.command("current")
def set_current(
    ref: str = typer.Argument(..., help="NAME (its newest version) or NAME:VERSION."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Choose which version `--model NAME` means."""
    from dataops.cli.jobrun import _actor as actor
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready
    from dataops.scoring import register, service

    ensure_ready()
    with session_scope() as session:
        name, version = service.parse_ref(ref)
        target = ref if version is not None else f"{name}:{_newest(session, name)}"
        mv = register.set_current(session, target, actor=actor())
        data = service.model_out(mv).model_dump(mode="json")
    emit(data, as_json, lambda: console.print(f"current: {data['ref']}"))


def _newest(session: Any, name: str) -> int:
    from sqlalchemy import func, select

    from dataops.scoring.errors import ModelNotFound
    from dataops.scoring.models import ModelVersion

    version = session.scalar(
        select(func.max(ModelVersion.version)).where(ModelVersion.name == name)
    )
    if version is None:
        raise ModelNotFound(f"no model {name!r}; see `dataops model list`")
    return int(version)


def score(
    model: str = typer.Option(..., "--model", help="NAME (its current version) or NAME:VERSION."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, max=4096, help="Images per forward pass (default 64)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=0, help="Decoding processes (default: by image count and CPUs)."
    ),
    rescore: bool = typer.Option(
        False, "--rescore", help="Score images that already have a prediction again."
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="With a broker: wait for the worker."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Score every ok image the model version has not scored yet (CUDA when available).

    Each batch commits on its own: an interrupted run resumes where it stopped.
    """
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready
    from dataops.scoring.schemas import score_params
    from dataops.scoring.score import pin

    given = {"model": model, "batch_size": batch_size, "workers": workers, "rescore": rescore}
    request = score_params({k: v for k, v in given.items() if v is not None})
    ensure_ready()
    with session_scope() as session:
        request = pin(session, request)
    params = request.model_dump()
    ref = str(request.model)
    job = run_job("score", params, description=f"score {ref}", wait=wait)
    data = {"job_id": job.id, **(job.result or {"status": job.status, "model": ref})}
    keys = ["model", "images", "scored", "already_scored", "failed", "device", "images_per_s"]

    def render() -> None:
        table("score", keys, [[data.get(k, "") for k in keys]])
        for line in data.get("errors", []):
            console.print(f"[yellow]quarantined:[/yellow] {line}", highlight=False)
        console.print(f"job {job.id}")

    emit(data, as_json, render)
