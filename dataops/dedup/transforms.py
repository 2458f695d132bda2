"""Near-duplicate generators: the edits that make a copy of a picture look new to a byte hash.

The quality tests, the benchmark and the demo all draw their duplicates from here, so the
recall we report is measured on the same edits everywhere. Each transform is
``fn(img, rng) -> img``; ``rng`` only varies parameters (offsets, angles, text), so a seeded
generator reproduces a data set exactly.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

Transform = Callable[[Image.Image, np.random.Generator], Image.Image]


def _rgb(img: Image.Image) -> Image.Image:
    return img if img.mode == "RGB" else img.convert("RGB")


def resize(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Downscale to 40-60 % per side, as thumbnails and re-uploads do."""
    scale = rng.uniform(0.4, 0.6)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return _rgb(img).resize(size, Image.Resampling.BILINEAR)


def jpeg(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Re-encode as a low-quality JPEG (quality 15-30): blocking and ringing artefacts."""
    buf = io.BytesIO()
    _rgb(img).save(buf, format="JPEG", quality=int(rng.integers(15, 31)))
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def _crop(img: Image.Image, rng: np.random.Generator, fraction: float) -> Image.Image:
    keep_w = round(img.width * (1.0 - fraction))
    keep_h = round(img.height * (1.0 - fraction))
    left = int(rng.integers(0, img.width - keep_w + 1))
    top = int(rng.integers(0, img.height - keep_h + 1))
    return _rgb(img).crop((left, top, left + keep_w, top + keep_h))


def crop5(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Cut 5 % off width and height at a random offset."""
    return _crop(img, rng, 0.05)


def crop10(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Cut 10 % off width and height at a random offset."""
    return _crop(img, rng, 0.10)


def hflip(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Mirror left-right, as augmentation pipelines and selfie cameras do."""
    return ImageOps.mirror(_rgb(img))


def brightness(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Brighten or darken by 20-35 %."""
    delta = rng.uniform(0.2, 0.35)
    factor = 1.0 + delta if rng.random() < 0.5 else 1.0 - delta
    return ImageEnhance.Brightness(_rgb(img)).enhance(factor)


def rotate(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Rotate by 2-4 degrees either way on the same canvas; corners take the top-left colour."""
    angle = rng.uniform(2.0, 4.0) * (1 if rng.random() < 0.5 else -1)
    rgb = _rgb(img)
    return rgb.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=rgb.getpixel((0, 0)))


def text_overlay(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Stamp a caption (watermark, date) along the bottom with PIL's default font."""
    out = _rgb(img).copy()
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=max(10, out.height // 16))
    caption = f"(c) dataops {int(rng.integers(2000, 2030))}"
    x = int(rng.integers(0, max(1, out.width // 4)))
    y = out.height - out.height // 8
    draw.text(
        (x, y), caption, fill=(255, 255, 255), font=font, stroke_width=1, stroke_fill=(0, 0, 0)
    )
    return out


TRANSFORMS: dict[str, Transform] = {
    "resize": resize,
    "jpeg": jpeg,
    "crop5": crop5,
    "crop10": crop10,
    "hflip": hflip,
    "brightness": brightness,
    "rotate": rotate,
    "text": text_overlay,
}
