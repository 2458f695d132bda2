"""Registering models: a TorchScript file becomes an immutable, numbered version of a name.

The file is stored in the blob store under its sha256. Registering the same bytes under the
same name returns the existing version, new bytes get the next version number. A dry run on a
blank input checks that the model runs with its input spec, has one output per class and
tells whether it also returns an embedding. A model is untrusted code: this module never
loads one; the dry run runs it in ``sandbox.ModelSandbox``, and the input spec is read from
the archive without loading it. One version per name is *current*: what a bare model name
means.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dataops.events import service as events
from dataops.scoring.errors import InvalidModel, ModelConflict
from dataops.scoring.inference import InputSpec
from dataops.scoring.models import ModelVersion
from dataops.scoring.service import ref_of, resolve_model
from dataops.storage import get_store

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MAX_CLASS_CHARS = 128


def _check_name(name: str) -> str:
    clean = name.strip()
    if not _NAME.match(clean):
        raise InvalidModel(
            f"model name {name!r} must start with a letter or digit and use only letters, "
            "digits, '_', '.' and '-' (up to 128 characters)"
        )
    return clean


def parse_classes(classes: str | Sequence[str]) -> list[str]:
    """A class list from ``a,b,c`` or a sequence; names must be unique and non-empty."""
    items = classes.split(",") if isinstance(classes, str) else list(classes)
    clean = [str(c).strip() for c in items]
    if len(clean) < 2 or any(not c for c in clean):
        got = repr(classes).replace("{", "{{").replace("}", "}}")
        raise InvalidModel(
            f"{{classes}} needs at least 2 non-empty names, got {got}", fields=("classes",)
        )
    if too_long := [c for c in clean if len(c) > _MAX_CLASS_CHARS]:
        raise InvalidModel(
            f"class names are at most {_MAX_CLASS_CHARS} characters: {too_long[0]!r}"
        )
    duplicates = sorted({c for c in clean if clean.count(c) > 1})
    if duplicates:
        raise InvalidModel(f"class names must be unique; repeated: {', '.join(duplicates)}")
    return clean


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _embedded_spec(path: Path) -> InputSpec | None:
    from pydantic import ValidationError

    from dataops.scoring.inference import read_input_spec

    try:
        return read_input_spec(path)
    except ValidationError as exc:
        raise InvalidModel(f"{path}: the input spec inside the file is invalid: {exc}") from exc
    except (ValueError, OSError) as exc:
        raise InvalidModel(
            f"{path}: not a TorchScript file ({_first_line(exc)}); export with torch.jit.script "
            "or torch.jit.trace and torch.jit.save"
        ) from exc


def _probe(path: Path, data: bytes, spec: InputSpec, classes: Sequence[str]) -> bool:
    """Dry-run the model in the sandbox on two blank images; True if it returns an embedding.

    Raises InvalidModel unless it gives one probability per class for each image.
    """
    from dataops.scoring.sandbox import Limits, ModelSandbox

    limits = Limits.from_settings(probe=True, threads=1)
    with ModelSandbox(data, limits=limits, channels=spec.channels, name=str(path)) as box:
        probs, embedding = box.run(None, (2, spec.channels, *spec.size))
    if probs.shape[1] != len(classes):
        raise InvalidModel(
            f"{path}: expected one output per class ({len(classes)}: {', '.join(classes)}); the "
            "model's logits have another number of columns"
        )
    return embedding is not None


def register_model(
    session: Session,
    path: str | os.PathLike[str],
    *,
    name: str,
    classes: str | Sequence[str],
    input_spec: InputSpec | None = None,
    make_current: bool = True,
    actor: str | None = None,
) -> tuple[ModelVersion, bool]:
    """Register a TorchScript file as a new immutable version of ``name``; returns (version, created).

    ``input_spec`` overrides the spec stored inside the file by ``export_torchscript``; one of
    the two is required. The new version becomes current unless ``make_current`` is False and
    the name already has a current version.
    """
    clean_name = _check_name(name)
    class_list = parse_classes(classes)
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InvalidModel(f"{file}: cannot read the model file ({exc.strerror or exc})") from exc
    spec = input_spec or _embedded_spec(file)
    if spec is None:
        raise InvalidModel(
            f"{str(file).replace('{', '{{').replace('}', '}}')}: the file carries no input "
            "spec; pass {input_spec} so scoring feeds the model the pixels it was trained on",
            fields=("input_spec",),
        )
    has_embedding = _probe(file, data, spec, class_list)
    sha256 = hashlib.sha256(data).hexdigest()
    spec_json = spec.model_dump(mode="json")
    existing = _by_sha(session, clean_name, sha256)
    if existing is not None:
        return _same_version(existing, class_list, spec_json), False
    blob_key = get_store().put(data, sha256)
    mv = _insert_version(
        session,
        ModelVersion(
            name=clean_name,
            sha256=sha256,
            blob_key=blob_key,
            classes=class_list,
            input_spec=spec_json,
            has_embedding=has_embedding,
            created_by=actor,
        ),
    )
    if mv.version == 0:
        # A concurrent registration of the same bytes won the race.
        winner = _by_sha(session, clean_name, sha256)
        assert winner is not None
        return _same_version(winner, class_list, spec_json), False
    has_current = session.scalar(
        select(ModelVersion.id).where(ModelVersion.name == clean_name, ModelVersion.is_current)
    )
    if make_current or has_current is None:
        _make_current(session, mv)
    events.record(
        session,
        "model.registered",
        "model_version",
        mv.id,
        actor=actor,
        details={
            "ref": ref_of(mv),
            "sha256": sha256,
            "classes": class_list,
            "input_spec": spec_json,
            "has_embedding": has_embedding,
            "current": mv.is_current,
        },
    )
    return mv, True


def _by_sha(session: Session, name: str, sha256: str) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(ModelVersion.name == name, ModelVersion.sha256 == sha256)
    )


def _same_version(
    existing: ModelVersion, classes: list[str], spec_json: dict[str, Any]
) -> ModelVersion:
    if list(existing.classes) != classes or existing.input_spec != spec_json:
        raise ModelConflict(
            f"this file is already {ref_of(existing)} with classes {existing.classes} and input "
            f"spec {existing.input_spec}; versions are immutable, so register it under a new name"
        )
    return existing


def _insert_version(session: Session, mv: ModelVersion) -> ModelVersion:
    """Give ``mv`` the next version number; version 0 means the same bytes won a race."""
    for _ in range(5):
        latest = session.scalar(
            select(func.max(ModelVersion.version)).where(ModelVersion.name == mv.name)
        )
        mv.version = (latest or 0) + 1
        try:
            with session.begin_nested():
                session.add(mv)
                session.flush()
            return mv
        except IntegrityError:
            if _by_sha(session, mv.name, mv.sha256) is not None:
                mv.version = 0
                return mv
    raise ModelConflict(f"could not allocate a version for {mv.name!r}; try again")


def _make_current(session: Session, mv: ModelVersion) -> None:
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.name == mv.name)
        .values(is_current=case((ModelVersion.id == mv.id, True), else_=False))
        .execution_options(synchronize_session=False)
    )
    session.flush()
    for other in session.scalars(select(ModelVersion).where(ModelVersion.name == mv.name)):
        session.refresh(other, ["is_current"])


def set_current(session: Session, ref: str, *, actor: str | None = None) -> ModelVersion:
    """Make one version what a bare model name means; the others of the name stop being current."""
    mv = resolve_model(session, ref)
    if mv.is_current:
        return mv
    _make_current(session, mv)
    events.record(
        session, "model.current", "model_version", mv.id, actor=actor, details={"ref": ref_of(mv)}
    )
    return mv
