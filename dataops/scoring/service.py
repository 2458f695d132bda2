"""Reading the model registry: which version a reference names, and what it has scored.

Registering is ``register``; scoring runs are ``score`` (what to score, storing results) and
``jobs`` (the job); embedding files are ``embeddings``.
"""

from __future__ import annotations

import re

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dataops.catalog.models import OK, Image
from dataops.scoring.errors import InvalidModel, ModelNotFound
from dataops.scoring.models import ModelVersion, Prediction
from dataops.scoring.schemas import ModelVersionOut
from dataops.storage import get_store

_REF = re.compile(r"^(?P<name>[^:]+)(?::v?(?P<version>[0-9]{1,9}))?$")


def ref_of(mv: ModelVersion) -> str:
    """``name:version``, the form every command and log line uses."""
    return f"{mv.name}:{mv.version}"


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``name`` or ``name:version`` (``name:v3`` too)."""
    match = _REF.match(ref.strip())
    if match is None:
        got = repr(ref).replace("{", "{{").replace("}", "}}")
        raise InvalidModel(f"{{model}} expects NAME or NAME:VERSION, got {got}", fields=("model",))
    version = match.group("version")
    return match.group("name"), int(version) if version is not None else None


def resolve_model(session: Session, ref: str | None) -> ModelVersion:
    """The version a model reference names: ``name:version``, or ``name``'s current version.

    Without a value, the current version of the only registered model name.
    """
    if ref is None:
        names = list(
            session.scalars(select(ModelVersion.name).distinct().order_by(ModelVersion.name))
        )
        if not names:
            raise ModelNotFound(
                "no model is registered; register one with `dataops model register FILE --name N "
                "--classes a,b,...`"
            )
        if len(names) > 1:
            raise InvalidModel(
                f"several models are registered ({', '.join(names)}); pass {{model}}",
                fields=("model",),
            )
        ref = names[0]
    name, version = parse_ref(ref)
    stmt = select(ModelVersion).where(ModelVersion.name == name)
    if version is not None:
        mv = session.scalar(stmt.where(ModelVersion.version == version))
    else:
        mv = session.scalar(
            stmt.order_by(ModelVersion.is_current.desc(), ModelVersion.version.desc()).limit(1)
        )
    if mv is None:
        raise ModelNotFound(f"no model {ref!r}; see `dataops model list`")
    return mv


def model_out(mv: ModelVersion, predictions: int = 0) -> ModelVersionOut:
    return ModelVersionOut(
        id=mv.id,
        name=mv.name,
        version=mv.version,
        ref=ref_of(mv),
        sha256=mv.sha256,
        classes=[str(c) for c in mv.classes],
        input_spec=dict(mv.input_spec),
        has_embedding=mv.has_embedding,
        is_current=mv.is_current,
        predictions=predictions,
        created_by=mv.created_by,
        created_at=mv.created_at,
    )


def list_models(session: Session, name: str | None = None) -> list[ModelVersionOut]:
    """Every version (by name, newest first) with how many images it has scored."""
    stmt = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version.desc())
    if name is not None:
        stmt = stmt.where(ModelVersion.name == name)
    versions = list(session.scalars(stmt))
    counts = dict(
        session.execute(
            select(Prediction.model_version_id, func.count()).group_by(Prediction.model_version_id)
        ).all()
    )
    return [model_out(mv, int(counts.get(mv.id, 0))) for mv in versions]


def model_uri(mv: ModelVersion) -> str:
    """Where the model's bytes can be opened: a local path or an fsspec URL."""
    store = get_store()
    return store.local_path(mv.blob_key) or f"{store.url}/{mv.blob_key}"


def image_location(uri: str, blob_key: str | None) -> str:
    """Copied images are read from the blob store, referenced ones from where they were found."""
    if not blob_key:
        return uri
    store = get_store()
    return store.local_path(blob_key) or f"{store.url}/{blob_key}"


def scored_image_ids(
    session: Session, model_version_id: int, *, ok_only: bool = False
) -> NDArray[np.int64]:
    """Ids of images with a committed prediction from the version, sorted."""
    stmt = select(Prediction.image_id).where(Prediction.model_version_id == model_version_id)
    if ok_only:
        stmt = stmt.join(Image, Image.id == Prediction.image_id).where(Image.status == OK)
    ids = np.fromiter(session.scalars(stmt), dtype=np.int64)
    ids.sort()
    return ids
