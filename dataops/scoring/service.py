"""Model registry and batch scoring.

Registry: a TorchScript file is stored in the blob store under its sha256. Versions are
immutable: registering the same bytes under the same name returns the existing version, new
bytes get the next version number. A dry run on a blank input checks that the model runs with
its input spec, has one output per class and tells whether it also returns an embedding. A
model is untrusted code: this module never loads one; the dry run and scoring run it in
``sandbox.ModelSandbox``, and the input spec is read from the archive without loading it. One version per name is *current*: what ``--model NAME`` means.

Scoring: every ok image without a prediction from the version is scored in DataLoader batches;
each batch commits on its own, with ``ON CONFLICT DO NOTHING``, so an interrupted job resumes
where it stopped and two jobs never store an image twice. An image that can no longer be
decoded is quarantined with the reason, as ingest would have done.

Embeddings live beside the catalog under ``<data dir>/embeddings/<name>/v<version>-<sha>/``:
each scored batch first writes its vectors as a small shard file (atomically), then commits
its predictions. At the end of a job the shards are compacted into ``embeddings.npz`` (raw
vectors keyed by image id) and the ``EmbeddingIndex`` file (``index.npz`` + sidecar,
normalised, for similarity search) is rebuilt from it. The database decides what counts:
compaction keeps only images that have a committed prediction, and a job first re-derives the
embeddings of scored images that the files lack (a lost or torn file, another machine's data
dir), so after any crash one successful run makes files and catalog agree again.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import multiprocessing
import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import case, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dataops.catalog.models import OK, QUARANTINED, Image
from dataops.config import get_settings
from dataops.events import service as events
from dataops.scoring.errors import InvalidModel, ModelConflict, ModelNotFound
from dataops.scoring.inference import InputSpec
from dataops.scoring.models import ModelVersion, Prediction
from dataops.scoring.schemas import ModelVersionOut
from dataops.storage import get_store

if TYPE_CHECKING:
    from dataops.dedup.index import EmbeddingIndex

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_REF = re.compile(r"^(?P<name>[^:]+)(?::v?(?P<version>[0-9]{1,9}))?$")
_MAX_CLASS_CHARS = 128
_INSERT_CHUNK = 500
_MAX_FAILURES_REPORTED = 20


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def ref_of(mv: ModelVersion) -> str:
    """``name:version``, the form every command and log line uses."""
    return f"{mv.name}:{mv.version}"


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
        raise InvalidModel(f"--classes needs at least 2 non-empty names, got {classes!r}")
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
            f"{file}: the file carries no input spec; pass --input-size (and --mean, --std, "
            "--channels) so scoring feeds the model the pixels it was trained on"
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


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``name`` or ``name:version`` (``name:v3`` too)."""
    match = _REF.match(ref.strip())
    if match is None:
        raise InvalidModel(f"--model expects NAME or NAME:VERSION, got {ref!r}")
    version = match.group("version")
    return match.group("name"), int(version) if version is not None else None


def resolve_model(session: Session, ref: str | None) -> ModelVersion:
    """The version a ``--model`` value names: ``name:version``, or ``name``'s current version.

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
            raise InvalidModel(f"several models are registered ({', '.join(names)}); pass --model")
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


def set_current(session: Session, ref: str, *, actor: str | None = None) -> ModelVersion:
    """Make one version what ``--model NAME`` means; the others of the name stop being current."""
    mv = resolve_model(session, ref)
    if mv.is_current:
        return mv
    _make_current(session, mv)
    events.record(
        session, "model.current", "model_version", mv.id, actor=actor, details={"ref": ref_of(mv)}
    )
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


def images_to_score(
    session: Session, model_version_id: int, *, rescore: bool
) -> list[tuple[int, str]]:
    """(image id, location) of ok images without a prediction from the version, by id."""
    stmt = select(Image.id, Image.uri, Image.blob_key).where(Image.status == OK).order_by(Image.id)
    if not rescore:
        stmt = stmt.where(
            ~exists().where(
                Prediction.image_id == Image.id, Prediction.model_version_id == model_version_id
            )
        )
    return [(i, image_location(uri, key)) for i, uri, key in session.execute(stmt)]


def _locations(session: Session, image_ids: Sequence[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for start in range(0, len(image_ids), _INSERT_CHUNK):
        part = list(image_ids[start : start + _INSERT_CHUNK])
        stmt = select(Image.id, Image.uri, Image.blob_key).where(Image.id.in_(part))
        out.update((i, image_location(uri, key)) for i, uri, key in session.execute(stmt))
    return dict(sorted(out.items()))


def scored_image_ids(
    session: Session, model_version_id: int, *, ok_only: bool = False
) -> np.ndarray:
    """Ids of images with a committed prediction from the version, sorted."""
    stmt = select(Prediction.image_id).where(Prediction.model_version_id == model_version_id)
    if ok_only:
        stmt = stmt.join(Image, Image.id == Prediction.image_id).where(Image.status == OK)
    ids = np.fromiter(session.scalars(stmt), dtype=np.int64)
    ids.sort()
    return ids


def store_predictions(
    session: Session,
    model_version_id: int,
    classes: Sequence[str],
    image_ids: Sequence[int],
    probs: np.ndarray,
    *,
    overwrite: bool = False,
) -> int:
    """Insert one prediction per image; existing ones are kept (or replaced with ``overwrite``).

    Returns how many rows were written.
    """
    from dataops.scoring import uncertainty

    if len(image_ids) == 0:
        return 0
    scores = uncertainty.all_scores(probs)
    top = np.argmax(probs, axis=1)
    rows = [
        {
            "model_version_id": model_version_id,
            "image_id": int(image_id),
            "probs": [float(p) for p in probs[i]],
            "predicted_class": str(classes[int(top[i])]),
            "predicted_score": float(probs[i, top[i]]),
            "least_confidence": float(scores["least_confidence"][i]),
            "margin": float(scores["margin"][i]),
            "entropy": float(scores["entropy"][i]),
        }
        for i, image_id in enumerate(image_ids)
    ]
    written = 0
    for start in range(0, len(rows), _INSERT_CHUNK):
        stmt = _insert(session, Prediction).values(rows[start : start + _INSERT_CHUNK])
        keys = ["model_version_id", "image_id"]
        if overwrite:
            excluded = stmt.excluded
            stmt = stmt.on_conflict_do_update(
                index_elements=keys,
                set_={
                    name: excluded[name]
                    for name in (
                        "probs",
                        "predicted_class",
                        "predicted_score",
                        "least_confidence",
                        "margin",
                        "entropy",
                        "created_at",
                    )
                },
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=keys)
        written += len(session.scalars(stmt.returning(Prediction.image_id)).all())
    return written


def quarantine_unreadable(
    session: Session, failures: Sequence[tuple[int, str]], *, model: str, actor: str | None
) -> int:
    """Images that no longer decode cannot be labeled either: quarantine them with the reason."""
    count = 0
    for image_id, reason in failures:
        image = session.get(Image, image_id)
        if image is None or image.status != OK:
            continue
        image.status = QUARANTINED
        image.quarantine_reason = f"unreadable when scored by {model}: {reason}"
        count += 1
        events.record(
            session,
            "image.quarantined",
            "image",
            image_id,
            actor=actor,
            details={"reason": image.quarantine_reason},
        )
    session.flush()
    return count


def _data_root() -> Path:
    return get_settings().resolved_data_dir / "embeddings"


class EmbeddingStore:
    """The embeddings one model version produced, keyed by image id (see the module docstring).

    Files: ``embeddings.npz`` (compacted ids + raw float32 vectors), ``shards/*.npz`` (one per
    scored batch since the last compaction; later shards win), ``index.npz`` + ``index.npz.json``
    (the ``EmbeddingIndex`` of the compacted set). A lock file serialises compactions and keeps
    readers from seeing a shard vanish under them.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base_path = root / "embeddings.npz"
        self.shard_dir = root / "shards"
        self.index_path = root / "index.npz"

    @classmethod
    def of(cls, mv: ModelVersion) -> EmbeddingStore:
        return cls(_data_root() / mv.name / f"v{mv.version}-{mv.sha256[:12]}")

    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @staticmethod
    def _write(path: Path, ids: np.ndarray, vectors: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=ids.astype(np.int64), vectors=vectors.astype(np.float32))
        os.replace(tmp, path)

    @staticmethod
    def _load(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                ids, vectors = data["ids"], data["vectors"]
        except (OSError, ValueError, KeyError, EOFError) as exc:
            log.warning("ignoring unreadable embeddings file %s: %s", path, exc)
            return None
        if ids.ndim != 1 or vectors.ndim != 2 or len(ids) != len(vectors):
            log.warning("ignoring malformed embeddings file %s", path)
            return None
        return ids, vectors

    def append(self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Write one batch's vectors as a new shard, before its predictions commit."""
        if len(ids) == 0:
            return
        name = f"{time.time_ns():020d}-{os.getpid()}.npz"
        self._write(self.shard_dir / name, np.asarray(ids, dtype=np.int64), vectors)

    def _read_unlocked(self) -> tuple[np.ndarray, np.ndarray, list[Path]]:
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        if self.base_path.exists() and (base := self._load(self.base_path)) is not None:
            parts.append(base)
        shards = sorted(self.shard_dir.glob("*.npz")) if self.shard_dir.exists() else []
        for shard in shards:
            if (loaded := self._load(shard)) is not None:
                parts.append(loaded)
        dims = {v.shape[1] for _, v in parts}
        if not parts or len(dims) > 1:
            if len(dims) > 1:
                log.warning("embeddings under %s disagree on dimensions; rebuilding", self.root)
            return np.empty(0, np.int64), np.empty((0, 0), np.float32), shards
        ids = np.concatenate([i for i, _ in parts]).astype(np.int64)
        vectors = np.concatenate([v for _, v in parts]).astype(np.float32)
        # Later files win: keep the last occurrence of every id, sorted by id.
        _, last = np.unique(ids[::-1], return_index=True)
        keep = len(ids) - 1 - last
        return ids[keep], vectors[keep], shards

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids sorted, vectors) of every stored embedding."""
        with self._locked(exclusive=False):
            ids, vectors, _ = self._read_unlocked()
        return ids, vectors

    def vectors_for(self, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectors for the given ids (zeros where missing) and the mask of the missing ones."""
        ids, vectors = self.read()
        wanted = np.asarray(image_ids, dtype=np.int64)
        if len(ids) == 0:
            return np.zeros((len(wanted), 0), np.float32), np.ones(len(wanted), dtype=bool)
        pos = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
        found = ids[pos] == wanted
        out = np.where(found[:, None], vectors[pos], np.float32(0)).astype(np.float32)
        return out, ~found

    def compact(self, keep_ids: np.ndarray) -> int:
        """Fold shards into the base, keep only ``keep_ids`` and rebuild the index file."""
        from dataops.dedup.index import EmbeddingIndex, sidecar_path

        with self._locked(exclusive=True):
            ids, vectors, shards = self._read_unlocked()
            mask = np.isin(ids, keep_ids)
            ids, vectors = ids[mask], vectors[mask]
            self._write(self.base_path, ids, vectors)
            if len(ids):
                EmbeddingIndex.build(ids, vectors).save(self.index_path)
            else:
                self.index_path.unlink(missing_ok=True)
                sidecar_path(self.index_path).unlink(missing_ok=True)
            for shard in shards:
                shard.unlink(missing_ok=True)
        return len(ids)

    def index(self) -> EmbeddingIndex:
        """The similarity index of the compacted embeddings."""
        from dataops.dedup.index import EmbeddingIndex

        return EmbeddingIndex.load(self.index_path)


def _num_workers(requested: int | None, images: int) -> int:
    if multiprocessing.current_process().daemon:
        return 0  # a Celery prefork child cannot start DataLoader worker processes
    if requested is not None:
        return requested
    if images < 256:
        return 0  # starting worker processes costs more than decoding a few images
    return max(1, min(4, (os.cpu_count() or 1) - 1))


@dataclass(frozen=True)
class _Target:
    """What a scoring run needs from a model version, read once so no session stays open."""

    id: int
    ref: str
    uri: str
    classes: list[str]
    spec: InputSpec
    store: EmbeddingStore | None


def _plan_scoring(
    session: Session, ref: str | None, *, rescore: bool
) -> tuple[_Target, list[tuple[int, str]], list[tuple[int, str]], int]:
    """The model to run, images to predict, images whose embedding was lost, ok image count."""
    mv = resolve_model(session, ref)
    target = _Target(
        id=mv.id,
        ref=ref_of(mv),
        uri=model_uri(mv),
        classes=[str(c) for c in mv.classes],
        spec=InputSpec.model_validate(mv.input_spec),
        store=EmbeddingStore.of(mv) if mv.has_embedding else None,
    )
    todo = images_to_score(session, mv.id, rescore=rescore)
    ok_total = session.scalar(select(func.count()).where(Image.status == OK)) or 0
    rederive: list[tuple[int, str]] = []
    if target.store is not None:
        have, _ = target.store.read()
        pending = {image_id for image_id, _ in todo}
        lost = np.setdiff1d(scored_image_ids(session, mv.id, ok_only=True), have)
        rederive = list(
            _locations(session, [int(i) for i in lost if int(i) not in pending]).items()
        )
    return target, todo, rederive, int(ok_total)


def run_score_job(ctx: Any) -> dict[str, Any]:
    """Job handler: params are {model, batch_size, workers, rescore}; commits per batch."""
    from dataops.scoring.inference import default_device, score_images

    params = ctx.params
    rescore = bool(params.get("rescore"))
    with ctx.session() as session:
        target, todo, rederive, ok_total = _plan_scoring(
            session, params.get("model"), rescore=rescore
        )
    work = todo + rederive
    device = default_device()
    written = failed = quarantined = done = 0
    failures: list[str] = []
    started = time.monotonic()
    ctx.progress(0, len(work), "score", force=True)
    batches = (
        score_images(
            target.uri,
            target.spec,
            [location for _, location in work],
            batch_size=int(params.get("batch_size") or 64),
            num_workers=_num_workers(params.get("workers"), len(work)),
            device=device,
            name=target.ref,
        )
        if work
        else iter(())
    )
    for out in batches:
        ids = [work[int(r)][0] for r in out.indices]
        if target.store is not None and out.embeddings is not None:
            target.store.append(ids, out.embeddings)
        predict = out.indices < len(todo)
        bad = [(work[index][0], reason) for index, reason in out.failed]
        with ctx.session() as session:
            written += store_predictions(
                session,
                target.id,
                target.classes,
                [i for i, p in zip(ids, predict, strict=True) if p],
                out.probs[predict],
                overwrite=rescore,
            )
            if bad:
                quarantined += quarantine_unreadable(
                    session, bad, model=target.ref, actor=ctx.actor
                )
        failed += len(bad)
        failures.extend(f"image {i}: {reason}" for i, reason in bad)
        done += len(ids) + len(bad)
        ctx.progress(done, len(work), "score")
    seconds = time.monotonic() - started
    embeddings = 0
    if target.store is not None:
        with ctx.session() as session:
            keep = scored_image_ids(session, target.id)
        embeddings = target.store.compact(keep)
    result = {
        "model": target.ref,
        "model_version_id": target.id,
        "images": ok_total,
        "scored": written,
        "already_scored": 0 if rescore else ok_total - len(todo),
        "embeddings_rederived": len(rederive),
        "embeddings": embeddings,
        "failed": failed,
        "quarantined": quarantined,
        "errors": failures[:_MAX_FAILURES_REPORTED],
        "device": device.type,
        "seconds": round(seconds, 3),
        "images_per_s": round(len(work) / seconds, 1) if work and seconds > 0 else None,
    }
    with ctx.session() as session:
        events.record(
            session,
            "model.scored",
            "model_version",
            target.id,
            actor=ctx.actor,
            details={k: v for k, v in result.items() if k != "errors"} | {"job_id": ctx.job_id},
        )
        # Recorded with its event: a retry answers with this result, not an empty second run.
        return ctx.finish(session, result)
