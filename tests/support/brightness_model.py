"""A TorchScript classifier whose outputs are a known function of an image's mean brightness.

With b = mean pixel value in [0, 1] and d = SHARPNESS * (b - 0.5), the logits are
(-d, d, 0) for the classes (dark, light, other) and the embedding is (b, 1 - b). So an image
of uniform gray g has known probabilities, the most uncertain images are those closest to
mid-gray, and "light" scores rise with brightness. Uniform gray PNGs make the test images.

PYTEST_DONT_REWRITE: helpers only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

from dataops.scoring.inference import InputSpec
from dataops.scoring.tinycnn import export_torchscript

CLASSES = ("dark", "light", "other")
SHARPNESS = 6.0
SPEC = InputSpec(size=(8, 8), mean=(0.0,), std=(1.0,), channels=1)


class Brightness(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.sharpness = SHARPNESS

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.mean(dim=(1, 2, 3))
        d = self.sharpness * (b - 0.5)
        logits = torch.stack([-d, d, torch.zeros_like(d)], dim=1)
        return logits, torch.stack([b, 1.0 - b], dim=1)


class BrightnessLogitsOnly(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.sharpness = SHARPNESS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.sharpness * (x.mean(dim=(1, 2, 3)) - 0.5)
        return torch.stack([-d, d, torch.zeros_like(d)], dim=1)


def export(path: Path, *, embedding: bool = True, with_spec: bool = True) -> Path:
    """Write the model as TorchScript, with the input spec inside unless told otherwise."""
    model = Brightness() if embedding else BrightnessLogitsOnly()
    export_torchscript(model, path, SPEC if with_spec else None)
    return path


def expected_probs(gray: int) -> np.ndarray:
    """The probabilities the model gives an image of uniform gray ``gray`` (0-255)."""
    b = np.float32(gray) / np.float32(255.0)
    d = SHARPNESS * (float(b) - 0.5)
    logits = np.array([-d, d, 0.0])
    e = np.exp(logits - logits.max())
    return e / e.sum()


def write_gray(path: Path, gray: int, side: int = 8) -> Path:
    """A uniform gray PNG; different sides give different bytes with the same brightness."""
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.new("L", (side, side), gray).save(path)
    return path
