"""A demo image set built from files that ship inside installed packages (no downloads).

scikit-learn ships two photos and the 8x8 handwritten digits. From them we make distinct
images (crops of different regions, upscaled digits with their true labels), near-duplicates
(resize, recompression, flip, brightness) and one truncated JPEG that ingest must quarantine.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

DIGITS_PER_CLASS = 30
TILE = 192


def _sample_photos() -> dict[str, Image.Image]:
    from importlib.resources import files

    folder = files("sklearn.datasets") / "images"
    return {
        name: Image.open(io.BytesIO((folder / f"{name}.jpg").read_bytes())).convert("RGB")
        for name in ("china", "flower")
    }


def _near_duplicates(img: Image.Image) -> dict[str, Image.Image]:
    w, h = img.size
    return {
        "resized": img.resize((w * 3 // 4, h * 3 // 4), Image.Resampling.BILINEAR),
        "flipped": ImageOps.mirror(img),
        "brighter": ImageEnhance.Brightness(img).enhance(1.25),
        "recompressed": img,
    }


def build_demo_set(dest: Path) -> dict[str, int]:
    """Write the demo images under ``dest``; returns counts by kind. Idempotent."""
    from sklearn.datasets import load_digits

    photos_dir, digits_dir = dest / "photos", dest / "digits"
    photos_dir.mkdir(parents=True, exist_ok=True)
    digits_dir.mkdir(parents=True, exist_ok=True)
    counts = {"photos": 0, "near_duplicates": 0, "digits": 0, "corrupt": 0}
    for name, photo in _sample_photos().items():
        w, h = photo.size
        for row in range(h // TILE):
            for col in range(w // TILE):
                tile = photo.crop((col * TILE, row * TILE, (col + 1) * TILE, (row + 1) * TILE))
                tile.save(photos_dir / f"{name}_r{row}c{col}.jpg", quality=92)
                counts["photos"] += 1
        photo.save(photos_dir / f"{name}.jpg", quality=92)
        counts["photos"] += 1
        for kind, variant in _near_duplicates(photo).items():
            quality = 35 if kind == "recompressed" else 90
            variant.save(photos_dir / f"{name}_{kind}.jpg", quality=quality)
            counts["near_duplicates"] += 1
    digits = load_digits()
    rng = np.random.default_rng(0)
    labels_path = dest / "digits_labels.csv"
    with labels_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "annotator", "label"])
        for cls in range(10):
            idx = rng.choice(np.flatnonzero(digits.target == cls), DIGITS_PER_CLASS, replace=False)
            for i in idx:
                pixels = (digits.images[i] * (255.0 / 16.0)).astype(np.uint8)
                img = Image.fromarray(pixels, mode="L").resize((32, 32), Image.Resampling.NEAREST)
                path = digits_dir / f"digit_{cls}_{i:04d}.png"
                img.save(path)
                writer.writerow([str(path.resolve()), "sklearn-digits", str(cls)])
                counts["digits"] += 1
    good = (photos_dir / "china.jpg").read_bytes()
    (photos_dir / "truncated.jpg").write_bytes(good[: len(good) // 3])
    counts["corrupt"] = 1
    return counts
