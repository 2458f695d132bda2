"""A tiny CNN (a few thousand parameters) that trains on a CPU in seconds.

It stands in for a team's real model in the demo, the tests and the benchmarks, with the same
contract as a production model: forward returns (logits, embedding), it is shipped as
TorchScript, and it reads pixels through an ``InputSpec``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from dataops.scoring.inference import SPEC_FILE, InputSpec, preprocess, split_output

if TYPE_CHECKING:
    import torch

DEFAULT_SPEC = InputSpec(size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def build_model(
    num_classes: int, channels: int = 3, width: int = 8, seed: int = 0
) -> torch.nn.Module:
    """Three conv blocks and a linear head; the pooled features are the embedding.

    The class is defined here so that importing this module does not import torch.
    """
    import torch
    from torch import nn

    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")

    class TinyCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(channels, width, 3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(width, 2 * width, 3, padding=1),
                nn.BatchNorm2d(2 * width),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(2 * width, 4 * width, 3, padding=1),
                nn.BatchNorm2d(4 * width),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
            )
            self.head = nn.Linear(4 * width, num_classes)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            embedding = self.features(x)
            return self.head(embedding), embedding

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyCNN()


def prepare(
    images: Sequence[Image.Image | NDArray[np.uint8]], spec: InputSpec = DEFAULT_SPEC
) -> NDArray[np.float32]:
    """Turn PIL images or uint8 pixel arrays (H, W) / (H, W, C) into an (n, C, H, W) batch.

    Uses the same ``preprocess`` as batch inference, so training and scoring see equal inputs.
    """
    arrays = []
    for i, image in enumerate(images):
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8:
                raise ValueError(f"pixel array {i} must be uint8, got {image.dtype}")
            image = Image.fromarray(image)
        arrays.append(preprocess(image, spec))
    if not arrays:
        raise ValueError("no images given")
    return np.stack(arrays)


def _as_batch(
    inputs: Sequence[Image.Image | NDArray[np.uint8]] | NDArray[np.float32], spec: InputSpec
) -> NDArray[np.float32]:
    if not isinstance(inputs, np.ndarray):
        return prepare(inputs, spec)
    expected = (spec.channels, *spec.size)
    if inputs.ndim != 4 or inputs.shape[1:] != expected or inputs.dtype != np.float32:
        raise ValueError(
            f"an array input must be the float32 (n, {', '.join(map(str, expected))}) batch "
            f"that prepare() returns, got {inputs.dtype} {inputs.shape}; pass a list of images "
            "or pixel arrays instead"
        )
    return inputs


def train(
    inputs: Sequence[Image.Image | NDArray[np.uint8]] | NDArray[np.float32],
    labels: Sequence[int] | NDArray[np.integer[Any]],
    *,
    num_classes: int | None = None,
    spec: InputSpec = DEFAULT_SPEC,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 0.01,
    width: int = 8,
    seed: int = 0,
) -> torch.nn.Module:
    """Train a fresh ``TinyCNN`` with Adam and a cosine learning-rate decay.

    The decay to zero makes the final weights stable (no last-step luck), and the same seed and
    inputs give the same weights.

    ``inputs`` is a list of PIL images or pixel arrays, or the batch ``prepare`` returned (to
    decode once and retrain many times). Runs on CPU in a single thread so that the result does
    not depend on the machine's core count; torch's global RNG is left untouched.
    """
    import torch
    from torch.nn import functional

    x = _as_batch(inputs, spec)
    y = np.asarray(labels, dtype=np.int64)
    if y.shape != (len(x),):
        raise ValueError(f"need one label per image: {len(x)} images, labels shape {y.shape}")
    if len(x) < 2:
        raise ValueError("need at least 2 labeled images to train")
    classes = int(num_classes) if num_classes is not None else int(y.max()) + 1
    if y.min() < 0 or y.max() >= classes:
        raise ValueError(f"labels must lie in [0, {classes})")
    model = build_model(classes, channels=spec.channels, width=width, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = len(x) // batch_size + (len(x) % batch_size >= 2)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(xt), generator=generator)
            for start in range(0, len(xt), batch_size):
                batch = order[start : start + batch_size]
                if len(batch) < 2:
                    continue
                loss = functional.cross_entropy(model(xt[batch])[0], yt[batch])
                optimizer.zero_grad()
                torch.autograd.backward(loss)
                optimizer.step()
                schedule.step()
    finally:
        torch.set_num_threads(threads)
        model.eval()
    return model


def predict(
    model: torch.nn.Module, inputs: NDArray[np.float32], batch_size: int = 512
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Probabilities and embeddings for a prepared batch, without writing image files."""
    import torch

    probs, embeddings = [], []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            p, e = split_output(model(torch.from_numpy(inputs[start : start + batch_size])))
            assert e is not None
            probs.append(p)
            embeddings.append(e)
    return np.concatenate(probs), np.concatenate(embeddings)


def export_torchscript(
    model: torch.nn.Module, path: str | os.PathLike[str], spec: InputSpec | None = None
) -> None:
    """Save ``model`` as TorchScript, with ``spec`` inside the archive when given."""
    import torch

    extra = {} if spec is None else {SPEC_FILE: spec.model_dump_json()}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
        scripted = torch.jit.script(model.eval())
        torch.jit.save(scripted, os.fspath(path), _extra_files=extra)
