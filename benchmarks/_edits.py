"""Edit families at several strengths: how datasets get copies of a photo.

Each edit is ``fn(img, rng) -> img`` on an upright RGB image; ``rng`` varies only placement
(offsets, colours, caption text), so a seed reproduces the set. Families group the edits
whose pairs are scored together: every pair within a family and one original (original to
edit and edit to edit) should be found.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

Edit = Callable[[Image.Image, np.random.Generator], Image.Image]


def _crop(per_side: float, centred: bool) -> Edit:
    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = img.size
        if centred:
            cuts = (per_side, per_side, per_side, per_side)
        else:  # one side of each axis keeps its edge, which side by chance
            lr = (per_side, 0.0) if rng.random() < 0.5 else (0.0, per_side)
            tb = (per_side, 0.0) if rng.random() < 0.5 else (0.0, per_side)
            cuts = (lr[0], tb[0], lr[1], tb[1])
        box = (
            round(w * cuts[0]),
            round(h * cuts[1]),
            w - round(w * cuts[2]),
            h - round(h * cuts[3]),
        )
        return img.crop(box)

    return edit


def _side_crop(share: float) -> Edit:
    """Cut ``share`` off one side only (a trimmed caption, a cropped-out neighbour)."""

    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = img.size
        side = int(rng.integers(0, 4))
        dx, dy = round(w * share), round(h * share)
        boxes = ((dx, 0, w, h), (0, dy, w, h), (0, 0, w - dx, h), (0, 0, w, h - dy))
        return img.crop(boxes[side])

    return edit


def _colour(name: str, rng: np.random.Generator) -> tuple[int, int, int]:
    if name == "black":
        return (0, 0, 0)
    if name == "white":
        return (255, 255, 255)
    return tuple(int(v) for v in rng.integers(0, 256, size=3))  # type: ignore[return-value]


def _border(share: float, colour: str, where: str) -> Edit:
    """Pad to a new frame: letterbox (top+bottom), pillarbox (left+right) or all sides."""

    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = img.size
        dx = round(w * share) if where in ("pillar", "frame") else 0
        dy = round(h * share) if where in ("letter", "frame") else 0
        out = Image.new("RGB", (w + 2 * dx, h + 2 * dy), _colour(colour, rng))
        out.paste(img, (dx, dy))
        return out

    return edit


def _rotate(degrees: float, expand: bool) -> Edit:
    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        angle = degrees if rng.random() < 0.5 else -degrees
        return img.rotate(
            angle, resample=Image.Resampling.BILINEAR, expand=expand, fillcolor=(0, 0, 0)
        )

    return edit


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(10, size))


def _caption_bar(share: float) -> Edit:
    """A solid bar with a caption over the bottom ``share`` of the height."""

    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        out = img.copy()
        w, h = out.size
        bar = round(h * share)
        draw = ImageDraw.Draw(out)
        draw.rectangle((0, h - bar, w, h), fill=_colour("any", rng))
        text = f"Photo {int(rng.integers(1000, 9999))} - all rights reserved"
        draw.text((w // 20, h - bar + bar // 4), text, fill=(255, 255, 255), font=_font(bar // 2))
        return out

    return edit


def _logo(share: float) -> Edit:
    """An opaque badge in a corner covering ``share`` of the area."""

    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        out = img.copy()
        w, h = out.size
        side = round((share * w * h) ** 0.5)
        corner = int(rng.integers(0, 4))
        x = w // 40 if corner % 2 == 0 else w - side - w // 40
        y = h // 40 if corner < 2 else h - side - h // 40
        draw = ImageDraw.Draw(out)
        draw.ellipse((x, y, x + side, y + side), fill=_colour("any", rng), outline=(255, 255, 255))
        draw.text(
            (x + side // 5, y + side // 3), "LOGO", fill=(255, 255, 255), font=_font(side // 4)
        )
        return out

    return edit


def _watermark(opacity: float) -> Edit:
    """Large translucent text across the middle third."""

    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = img.size
        layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        alpha = round(255 * opacity)
        draw.text(
            (w // 10, h // 2 - h // 12),
            f"SAMPLE {int(rng.integers(10, 99))}",
            fill=(255, 255, 255, alpha),
            font=_font(h // 6),
            stroke_width=2,
            stroke_fill=(0, 0, 0, alpha),
        )
        return Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")

    return edit


def _resize(scale: float) -> Edit:
    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = img.size
        return img.resize((max(1, round(w * scale)), max(1, round(h * scale))))

    return edit


def _jpeg(quality: int) -> Edit:
    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as out:
            return out.convert("RGB")

    return edit


def _enhance(kind: type[ImageEnhance._Enhance], factor: float) -> Edit:
    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        return kind(img).enhance(factor)  # type: ignore[call-arg]

    return edit


def _stretch(x: float, y: float) -> Edit:
    def edit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = img.size
        return img.resize((round(w * x), round(h * y)))

    return edit


FAMILIES: dict[str, dict[str, Edit]] = {
    "crop": {
        "centre 3%": _crop(0.03, True),
        "centre 6%": _crop(0.06, True),
        "centre 10%": _crop(0.10, True),
        "off-centre 5%": _crop(0.05, False),
        "off-centre 10%": _crop(0.10, False),
        "10% one side": _side_crop(0.10),
    },
    "border": {
        "letterbox 5% black": _border(0.05, "black", "letter"),
        "letterbox 10% black": _border(0.10, "black", "letter"),
        "pillarbox 10% white": _border(0.10, "white", "pillar"),
        "frame 5% coloured": _border(0.05, "coloured", "frame"),
        "pillarbox 10% coloured": _border(0.10, "coloured", "pillar"),
    },
    "rotate": {
        "1°": _rotate(1.0, False),
        "3°": _rotate(3.0, False),
        "5°": _rotate(5.0, False),
        "3° expanded": _rotate(3.0, True),
        "5° expanded": _rotate(5.0, True),
    },
    "overlay": {
        "caption bar 8%": _caption_bar(0.08),
        "caption bar 15%": _caption_bar(0.15),
        "logo 5%": _logo(0.05),
        "logo 12%": _logo(0.12),
        "watermark 40%": _watermark(0.4),
    },
    "flip": {
        "hflip": lambda img, rng: ImageOps.mirror(img),
        "hflip + resize 50%": lambda img, rng: _resize(0.5)(ImageOps.mirror(img), rng),
    },
    "photometric": {
        "resize 50%": _resize(0.5),
        "resize 25%": _resize(0.25),
        "jpeg q20": _jpeg(20),
        "brightness +30%": _enhance(ImageEnhance.Brightness, 1.3),
        "brightness -30%": _enhance(ImageEnhance.Brightness, 0.7),
        "contrast 0.7": _enhance(ImageEnhance.Contrast, 0.7),
        "blur r2": lambda img, rng: img.filter(ImageFilter.GaussianBlur(2)),
        "grayscale": lambda img, rng: ImageOps.grayscale(img).convert("RGB"),
        "stretch 0.8 x": _stretch(0.8, 1.0),
    },
}
"""Family -> edit name -> edit. The photometric family is what dataops caught before."""
