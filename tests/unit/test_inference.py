"""Batch inference against a TorchScript model whose output is a known function of the pixels."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from dataops.scoring import tinycnn
from dataops.scoring.errors import InvalidModel
from dataops.scoring.inference import (
    InputSpec,
    UriImageDataset,
    load_model,
    preprocess,
    read_input_spec,
    score_images,
)

SPEC = InputSpec(size=(8, 8), mean=(0.5, 0.25, 0.125), std=(0.5, 0.25, 0.5))
SCALE = 3.0


class MeanColour(torch.nn.Module):
    """logits = SCALE × per-channel mean; embedding = channel means of top and bottom halves."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = SCALE

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        half = x.shape[2] // 2
        top = x[:, :, :half].mean(dim=(2, 3))
        bottom = x[:, :, half:].mean(dim=(2, 3))
        return self.scale * x.mean(dim=(2, 3)), torch.cat([top, bottom], dim=1)


class LogitsOnly(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class ThreeOutputs(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m = x.mean(dim=(2, 3))
        return m, m, m


def _save_script(module: torch.nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(module), str(path))
    return path


def _normalised(rgb: tuple[float, float, float]) -> np.ndarray:
    return (np.asarray(rgb) / 255.0 - np.asarray(SPEC.mean)) / np.asarray(SPEC.std)


def _expected_probs(rgb: tuple[float, float, float]) -> np.ndarray:
    logits = SCALE * _normalised(rgb)
    e = np.exp(logits - logits.max())
    return e / e.sum()


COLOURS = {
    "red.png": (255, 0, 0),
    "teal.png": (0, 128, 128),
    "grey.png": (100, 100, 100),
    "orange.jpg": (230, 120, 40),
}


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name, rgb in COLOURS.items():
        path = tmp_path / name
        Image.new("RGB", (20, 12), rgb).save(path, quality=95)
        paths[name] = path
    # Stored 16 wide x 8 high, left half red, right half blue; EXIF orientation 6 means "rotate
    # 90 degrees clockwise to display", which puts the red half on top.
    rotated = Image.new("RGB", (16, 8), (0, 0, 255))
    rotated.paste((255, 0, 0), (0, 0, 8, 8))
    exif = Image.Exif()
    exif[0x0112] = 6
    paths["rotated.jpg"] = tmp_path / "rotated.jpg"
    rotated.save(paths["rotated.jpg"], exif=exif, quality=95)
    paths["corrupt.jpg"] = tmp_path / "corrupt.jpg"
    paths["corrupt.jpg"].write_bytes(b"<html>not an image at all</html>")
    truncated = tmp_path / "truncated.jpg"
    big = Image.effect_noise((64, 64), 60).convert("RGB")
    big.save(truncated, quality=90)
    truncated.write_bytes(truncated.read_bytes()[:400])
    paths["truncated.jpg"] = truncated
    paths["missing.png"] = tmp_path / "missing.png"
    paths["model"] = _save_script(MeanColour(), tmp_path / "mean_colour.pt")
    return paths


def _score_all(model: Path, uris: list[str], **kwargs: int) -> tuple:
    batches = list(score_images(model, SPEC, uris, **kwargs))
    indices = np.concatenate([b.indices for b in batches])
    probs = np.concatenate([b.probs for b in batches])
    embeddings = np.concatenate([b.embeddings for b in batches])
    failed = [f for b in batches for f in b.failed]
    return batches, indices, probs, embeddings, failed


def test_input_spec_json_round_trip() -> None:
    raw = SPEC.model_dump_json()
    again = InputSpec.model_validate_json(raw)
    assert again == SPEC
    assert again.size == (8, 8)
    assert InputSpec(size=(4, 4), mean=(0.5,), std=(0.2,), channels=1).mode == "L"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": (8, 8), "mean": (0.5,), "std": (0.5, 0.5, 0.5)},
        {"size": (8, 8), "mean": (0.5,) * 3, "std": (0.5, 0.0, 0.5)},
        {"size": (0, 8), "mean": (0.5,) * 3, "std": (0.5,) * 3},
        {"size": (8, 8), "mean": (0.5,) * 3, "std": (0.5,) * 3, "channels": 2},
        {"size": (8, 8), "mean": (0.5,) * 3, "std": (0.5,) * 3, "extra": 1},
    ],
)
def test_input_spec_rejects_inconsistent_values(kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        InputSpec(**kwargs)


def test_preprocess_normalises_and_orders_channels_first() -> None:
    out = preprocess(Image.new("RGB", (5, 3), (255, 0, 0)), SPEC)
    assert out.shape == (3, 8, 8)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], _normalised((255, 0, 0)), rtol=1e-6)


def test_preprocess_keeps_sixteen_bit_images_visible() -> None:
    grey = InputSpec(size=(2, 2), mean=(0.0,), std=(1.0,), channels=1)
    wide = Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16))
    np.testing.assert_allclose(preprocess(wide, grey), 128 / 255, rtol=1e-6)


def test_preprocess_handles_palette_transparency_without_warnings() -> None:
    palette = Image.new("P", (4, 4), 1)
    palette.info["transparency"] = b"\x00" * 256
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert preprocess(palette, SPEC).shape == (3, 8, 8)


def test_scores_match_the_closed_form_and_failures_are_reported(
    images: dict[str, Path],
) -> None:
    names = [
        "red.png",
        "corrupt.jpg",
        "teal.png",
        "missing.png",
        "grey.png",
        "truncated.jpg",
        "orange.jpg",
        "rotated.jpg",
    ]
    uris = [str(images[n]) for n in names]
    uris[2] = images["teal.png"].as_uri()  # fsspec URL
    _, indices, probs, embeddings, failed = _score_all(images["model"], uris, batch_size=3)

    assert indices.tolist() == [0, 2, 4, 6, 7]
    assert probs.dtype == np.float32
    for row, name in enumerate(["red.png", "teal.png", "grey.png"]):
        np.testing.assert_allclose(probs[row], _expected_probs(COLOURS[name]), atol=1e-6)
    # JPEG is lossy: a uniform colour comes back within a few levels.
    np.testing.assert_allclose(probs[3], _expected_probs(COLOURS["orange.jpg"]), atol=0.02)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)

    assert embeddings.shape == (5, 6)
    # Unrotated, both halves would be half red, half blue: (0, -1, 0.75) after normalising.
    # JPEG chroma subsampling blurs the red/blue edge, hence the tolerance.
    top, bottom = embeddings[4, :3], embeddings[4, 3:]
    np.testing.assert_allclose(top, _normalised((255, 0, 0)), atol=0.25)
    np.testing.assert_allclose(bottom, _normalised((0, 0, 255)), atol=0.25)

    reasons = dict(failed)
    assert sorted(reasons) == [1, 3, 5]
    assert "UnidentifiedImageError" in reasons[1]
    assert "FileNotFoundError" in reasons[3]
    assert "truncated" in reasons[5].lower()


def test_worker_processes_give_identical_results(images: dict[str, Path]) -> None:
    names = ["red.png", "corrupt.jpg", "teal.png", "grey.png", "orange.jpg", "rotated.jpg"]
    uris = [str(images[n]) for n in names] * 3
    single = _score_all(images["model"], uris, batch_size=4, num_workers=0)
    workers = _score_all(images["model"], uris, batch_size=4, num_workers=2)
    for a, b in zip(single[1:4], workers[1:4], strict=True):
        np.testing.assert_array_equal(a, b)
    assert single[4] == workers[4]
    assert [b.indices.tolist() for b in single[0]] == [b.indices.tolist() for b in workers[0]]


def test_a_batch_of_only_failures_keeps_its_shape(images: dict[str, Path]) -> None:
    uris = [str(images["corrupt.jpg"]), str(images["missing.png"]), str(images["red.png"])]
    batches = list(score_images(images["model"], SPEC, uris, batch_size=2))
    assert batches[0].probs.shape == (0, 3)
    assert batches[0].embeddings is not None
    assert batches[0].embeddings.shape == (0, 6)
    assert [i for i, _ in batches[0].failed] == [0, 1]
    assert batches[1].indices.tolist() == [2]


def test_logits_only_models_have_no_embeddings(images: dict[str, Path], tmp_path: Path) -> None:
    model = _save_script(LogitsOnly(), tmp_path / "logits.pt")
    (batch,) = score_images(model, SPEC, [str(images["red.png"])])
    assert batch.embeddings is None
    logits = _normalised(COLOURS["red.png"])
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(batch.probs[0], expected, atol=1e-6)


def test_unexpected_model_outputs_fail_before_decoding(tmp_path: Path) -> None:
    model = _save_script(ThreeOutputs(), tmp_path / "three.pt")
    with pytest.raises(InvalidModel, match="expected logits or"):
        list(score_images(model, SPEC, ["/nonexistent.png"]))


def test_dataset_reports_instead_of_raising(images: dict[str, Path]) -> None:
    dataset = UriImageDataset([str(images["corrupt.jpg"]), str(images["red.png"])], SPEC)
    assert len(dataset) == 2
    index, pixels, error = dataset[0]
    assert (index, pixels) == (0, None)
    assert error is not None
    assert dataset[1][1] is not None


def test_scoring_restores_the_thread_count(images: dict[str, Path]) -> None:
    before = torch.get_num_threads()
    list(score_images(images["model"], SPEC, [str(images["red.png"])], num_workers=1))
    assert torch.get_num_threads() == before


def _two_colour_set(n: int, seed: int) -> tuple[list[Image.Image], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    base = np.where(labels[:, None], [40, 60, 220], [220, 50, 40])
    pixels = np.clip(base[:, None, None, :] + rng.normal(0, 25, (n, 12, 12, 3)), 0, 255)
    return [Image.fromarray(p.astype(np.uint8)) for p in pixels], labels


def test_tinycnn_learns_is_deterministic_and_exports(tmp_path: Path) -> None:
    spec = InputSpec(size=(12, 12), mean=(0.5,) * 3, std=(0.25,) * 3)
    train_images, train_labels = _two_colour_set(40, seed=0)
    test_images, test_labels = _two_colour_set(20, seed=1)
    model = tinycnn.train(train_images, train_labels, spec=spec, epochs=15, seed=3)
    again = tinycnn.train(
        tinycnn.prepare(train_images, spec), train_labels, spec=spec, epochs=15, seed=3
    )
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    probs, embeddings = tinycnn.predict(model, tinycnn.prepare(test_images, spec))
    assert (probs.argmax(axis=1) == test_labels).all()
    assert embeddings.shape == (20, 32)

    path = tmp_path / "tiny.pt"
    tinycnn.export_torchscript(model, path, spec)
    assert read_input_spec(path) == spec
    uris = []
    for i, image in enumerate(test_images):
        uris.append(str(tmp_path / f"{i}.png"))
        image.save(uris[-1])
    scored = list(score_images(path, spec, uris, batch_size=8, num_workers=2))
    np.testing.assert_allclose(np.concatenate([b.probs for b in scored]), probs, atol=1e-5)
    assert load_model(path, "cpu").training is False


def test_read_input_spec_is_none_when_absent(images: dict[str, Path]) -> None:
    assert read_input_spec(images["model"]) is None


def test_train_rejects_mismatched_inputs() -> None:
    spec = InputSpec(size=(12, 12), mean=(0.5,) * 3, std=(0.25,) * 3)
    with pytest.raises(ValueError, match="one label per image"):
        tinycnn.train([Image.new("RGB", (4, 4))] * 3, [0, 1], spec=spec)
    with pytest.raises(ValueError, match="prepare"):
        tinycnn.train(np.zeros((2, 3, 8, 8), np.float32), [0, 1], spec=spec)
    with pytest.raises(ValueError, match="at least 2"):
        tinycnn.train([Image.new("RGB", (4, 4))], [0], num_classes=2, spec=spec)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        tinycnn.train([Image.new("RGB", (4, 4))] * 2, [0, 2], num_classes=2, spec=spec)
    with pytest.raises(ValueError, match="uint8"):
        tinycnn.prepare([np.zeros((4, 4), np.float64)], spec)
