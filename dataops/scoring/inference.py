"""Batch inference of a TorchScript classifier over image URIs.

Decoding happens in DataLoader worker processes so it overlaps the forward pass; an image that
cannot be decoded is reported with its reason and the run goes on. Transforms are PIL + numpy
(``preprocess``), shared with training so a model sees the same pixels in both.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from struct import error as StructError
from typing import TYPE_CHECKING, Any, Literal, cast

import fsspec
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from dataops.scoring.errors import InvalidModel

if TYPE_CHECKING:
    import torch

SPEC_FILE = "input_spec.json"
"""Name of the input spec stored inside a TorchScript archive by ``export_torchscript``."""

DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    StructError,
    Image.DecompressionBombError,
)
"""What PIL raises on unreadable, truncated, oversized or non-image bytes."""

_JIT_DEPRECATION = r"`torch\.jit\.\w+` is deprecated"
_MAX_SPEC_BYTES = 64 * 1024


class InputSpec(BaseModel):
    """How a model wants its pixels; stored with a model version so scoring matches training."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: tuple[PositiveInt, PositiveInt] = Field(description="(height, width) after resizing")
    mean: tuple[float, ...] = Field(description="per-channel mean of pixels scaled to [0, 1]")
    std: tuple[float, ...] = Field(description="per-channel standard deviation, > 0")
    channels: Literal[1, 3] = Field(default=3, description="1 = grayscale (L), 3 = RGB")

    @model_validator(mode="after")
    def _check_channels(self) -> InputSpec:
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(
                f"mean and std need one value per channel ({self.channels}), "
                f"got {len(self.mean)} and {len(self.std)}"
            )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std values must be positive, got {self.std}")
        return self

    @property
    def mode(self) -> str:
        """The PIL mode images are converted to."""
        return "RGB" if self.channels == 3 else "L"


def _to_mode(img: Image.Image, mode: str) -> Image.Image:
    if img.mode.startswith("I;16") or img.mode == "I":
        # PIL's own conversion clips 16-bit values at 255; rescale so the picture survives.
        wide = np.asarray(img, dtype=np.float64) / 257.0
        img = Image.fromarray(np.clip(np.rint(wide), 0, 255).astype(np.uint8))
    elif img.mode in ("P", "PA") and "transparency" in img.info:
        img = img.convert("RGBA")
    return img if img.mode == mode else img.convert(mode)


def preprocess(img: Image.Image, spec: InputSpec) -> NDArray[np.float32]:
    """Orient by EXIF, convert, resize (stretch) and normalise to a (C, H, W) float32 array."""
    img = _to_mode(ImageOps.exif_transpose(img), spec.mode)
    height, width = spec.size
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    arr = (arr - np.asarray(spec.mean, dtype=np.float32)) / np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def open_image(uri: str, spec: InputSpec | None = None) -> Image.Image:
    """Decode a local path or fsspec URL; with a spec, JPEGs decode at reduced scale.

    Draft mode asks for at least the larger target side in both directions, so an EXIF
    rotation afterwards still leaves enough pixels.
    """
    with fsspec.open(uri, "rb") as f:
        img = Image.open(f)
        if spec is not None:
            side = max(spec.size)
            img.draft(spec.mode, (side, side))
        img.load()
    return img


class UriImageDataset:
    """Map-style dataset over image URIs yielding ``(index, pixels | None, error | None)``.

    It follows torch's Dataset protocol (``__len__`` + ``__getitem__``) without subclassing, so
    this module imports without torch and the dataset pickles for spawned worker processes.
    """

    def __init__(self, uris: Sequence[str], spec: InputSpec) -> None:
        self.uris = list(uris)
        self.spec = spec

    def __len__(self) -> int:
        return len(self.uris)

    def __getitem__(self, index: int) -> tuple[int, NDArray[np.float32] | None, str | None]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                pixels = preprocess(open_image(self.uris[index], self.spec), self.spec)
        except DECODE_ERRORS as exc:
            return index, None, _reason(exc)
        return index, pixels, None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        # PIL's message names the file object's repr, which differs from run to run.
        return "UnidentifiedImageError: not a recognised image format"
    return f"{type(exc).__name__}: {exc}"


def _collate(
    items: list[tuple[int, NDArray[np.float32] | None, str | None]],
) -> tuple[NDArray[np.int64], torch.Tensor | None, list[tuple[int, str]]]:
    """A tensor, not an array: a DataLoader worker hands tensors over in shared memory."""
    import torch

    ok = [(index, pixels) for index, pixels, _ in items if pixels is not None]
    failed = [(index, error) for index, _, error in items if error is not None]
    indices = np.array([index for index, _ in ok], dtype=np.int64)
    batch = torch.from_numpy(np.stack([pixels for _, pixels in ok])) if ok else None
    return indices, batch, failed


@dataclass(frozen=True)
class ScoredBatch:
    """Model outputs for one batch; row i of ``probs`` belongs to ``uris[indices[i]]``."""

    indices: NDArray[np.int64]
    probs: NDArray[np.float32]
    embeddings: NDArray[np.float32] | None
    failed: list[tuple[int, str]]


def default_device(device: str | torch.device | None = None) -> torch.device:
    """CUDA when available, CPU otherwise, unless the caller names a device."""
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(path: str | os.PathLike[str], device: str | torch.device | None = None) -> Any:
    """Load a TorchScript file (local path or fsspec URL) in eval mode on ``device``.

    Loading runs the file's code: only for files this process wrote itself. Registered models
    run in ``dataops.scoring.sandbox``.
    """
    import torch

    dev = default_device(device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_JIT_DEPRECATION, category=DeprecationWarning)
        with fsspec.open(str(path), "rb") as f:
            jit_load = cast(Callable[..., Any], torch.jit.load)  # unannotated in torch
            model = jit_load(f, map_location=dev)
    model.eval()
    return model


def read_input_spec(path: str | os.PathLike[str]) -> InputSpec | None:
    """The input spec saved inside a TorchScript file by ``export_torchscript``, if any.

    Read from the zip archive directly: loading TorchScript runs the model's code, which only
    ever happens in the sandbox (``dataops.scoring.sandbox``).
    """
    with fsspec.open(str(path), "rb") as f:
        try:
            archive = zipfile.ZipFile(f)
        except zipfile.BadZipFile as exc:
            raise ValueError("not a zip archive") from exc
        with archive:
            found = [
                info
                for info in archive.infolist()
                if info.filename.split("/")[1:] == ["extra", SPEC_FILE]
            ]
            if not found:
                return None
            if found[0].file_size > _MAX_SPEC_BYTES:
                raise ValueError(f"{SPEC_FILE} is larger than {_MAX_SPEC_BYTES} bytes")
            raw = archive.read(found[0])
    return InputSpec.model_validate_json(raw) if raw else None


def split_output(output: Any) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
    """Softmax probabilities (float32) and optional embeddings from a model's forward output.

    A model returns either a logits tensor or a tuple (logits, embedding).
    """
    import torch

    embedding = None
    if isinstance(output, tuple | list):
        if len(output) != 2:
            raise ValueError(
                f"model returned {len(output)} outputs; expected logits or (logits, embedding)"
            )
        output, embedding = output
    if not isinstance(output, torch.Tensor) or output.ndim != 2:
        raise ValueError("model logits must be a 2-D (batch, classes) tensor")
    probs = torch.softmax(output.float(), dim=1).cpu().numpy()
    if embedding is None:
        return probs, None
    if not isinstance(embedding, torch.Tensor) or embedding.shape[0] != output.shape[0]:
        raise ValueError("model embedding must be a tensor with one row per image")
    return probs, embedding.float().flatten(1).cpu().numpy()


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def score_images(
    model_path: str | os.PathLike[str],
    spec: InputSpec,
    uris: Sequence[str],
    batch_size: int = 64,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    *,
    name: str | None = None,
) -> Iterator[ScoredBatch]:
    """Score images in order, one ``ScoredBatch`` per DataLoader batch.

    The model runs in a ``ModelSandbox`` (a locked-down child process); this process only
    decodes. The model runs once on a blank input first, so a wrong output format fails before
    any decoding, and batches whose images all failed still carry (0, classes) shaped arrays.
    On CPU the model gets the cores left over by the decoding workers.
    """
    from torch.utils.data import DataLoader

    from dataops.scoring.sandbox import Limits, ModelSandbox

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be non-negative, got {num_workers}")
    dev = default_device(device)
    threads = max(1, _usable_cpus() - num_workers) if dev.type == "cpu" else 1
    with fsspec.open(str(model_path), "rb") as f:
        data = f.read()
    limits = Limits.from_settings(probe=False, threads=threads)
    label = name or str(model_path)
    with ModelSandbox(
        data, limits=limits, device=str(dev), threads=threads, channels=spec.channels, name=label
    ) as box:
        probe_probs, probe_emb = box.run(None, (1, spec.channels, *spec.size))
        n_classes = probe_probs.shape[1]
        emb_dim = None if probe_emb is None else probe_emb.shape[1]
        loader: DataLoader[Any] = DataLoader(
            UriImageDataset(uris, spec),  # type: ignore[arg-type]  # protocol, not subclass
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            collate_fn=_collate,
        )

        def checked(indices: NDArray[np.int64], failed: list[tuple[int, str]]) -> ScoredBatch:
            probs, embeddings = box.result()
            if probs.shape[1] != n_classes or (
                (embeddings is None) != (emb_dim is None)
                or (embeddings is not None and embeddings.shape[1] != emb_dim)
            ):
                raise InvalidModel(
                    f"{label}: expected the same output shape for every batch (as on the blank "
                    "input); the model changed it"
                )
            return ScoredBatch(indices, probs, embeddings, failed)

        # One batch in flight: the model runs on batch k while this process decodes k + 1
        # and the caller stores k - 1.
        in_flight: tuple[NDArray[np.int64], list[tuple[int, str]]] | None = None
        for indices, pixels, failed in loader:
            done = checked(*in_flight) if in_flight is not None else None
            in_flight = None
            if pixels is not None:
                box.submit(pixels.numpy())
                in_flight = (indices, failed)
            if done is not None:
                yield done
            if pixels is None:
                empty_emb = None if emb_dim is None else np.empty((0, emb_dim), np.float32)
                yield ScoredBatch(indices, np.empty((0, n_classes), np.float32), empty_emb, failed)
        if in_flight is not None:
            yield checked(*in_flight)
