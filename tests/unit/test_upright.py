"""Turning EXIF-rotated images upright for exports: lossless where jpegtran can, else re-encoded."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from dataops.manifests.upright import ORIENTATION_TAG, orientation, upright

SAMSUNG = "metadata-extractor-images/Samsung GT-I9000 (Galaxy S).jpg"  # 640x480, orientation 6


def _decoded(data: bytes) -> tuple[np.ndarray, int]:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16), img.getexif().get(ORIENTATION_TAG, 1)


def _expected(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"), dtype=np.int16)


@pytest.mark.skipif(not shutil.which("jpegtran"), reason="jpegtran (libjpeg-turbo-progs) missing")
def test_jpeg_turned_losslessly_with_jpegtran(corpus: Path) -> None:
    data = (corpus / SAMSUNG).read_bytes()
    result = upright(data)
    assert result is not None and result.method == "jpegtran"
    pixels, tag = _decoded(result.data)
    assert tag == 1 and pixels.shape == (640, 480, 3)
    assert np.abs(pixels - _expected(data)).mean() < 0.5


def test_jpeg_reencoded_without_jpegtran(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dataops.manifests.upright.shutil.which", lambda name: None)
    data = (corpus / SAMSUNG).read_bytes()
    result = upright(data)
    assert result is not None and result.method == "re-encoded"
    pixels, tag = _decoded(result.data)
    assert tag == 1 and pixels.shape == (640, 480, 3)
    assert np.abs(pixels - _expected(data)).mean() < 2.0


def test_png_with_orientation_is_turned_exactly() -> None:
    source = Image.fromarray(np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3))
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 8
    buffer = io.BytesIO()
    source.save(buffer, format="PNG", exif=exif)
    data = buffer.getvalue()
    assert orientation(data) == (8, "PNG")
    result = upright(data)
    assert result is not None and result.method == "re-encoded"
    pixels, tag = _decoded(result.data)
    assert tag == 1
    assert np.array_equal(pixels, _expected(data))
    assert pixels.shape == (6, 4, 3)


def test_upright_and_undecodable_images_are_left_alone() -> None:
    plain = io.BytesIO()
    Image.new("RGB", (8, 8)).save(plain, format="JPEG")
    assert upright(plain.getvalue()) is None
    assert upright(b"not an image") is None
