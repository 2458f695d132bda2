"""Contact sheets: a group's thumbnails on one PNG, so a reviewer sees at a glance whether the
members really are one picture before trusting a merge or a leak report.

Tiles are laid out left to right, representative first, each captioned with the image id and
its pHash distance to the representative. The PNG carries the tile count in a text chunk
(``dataops-tiles``) for scripts.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont, ImageOps
from PIL.PngImagePlugin import PngInfo

from dataops.errors import DataopsError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dataops.catalog.models import Image

TILE = 192
COLUMNS = 5
PAD = 8
CAPTION = 22
TITLE = 30
MAX_TILES = 100
BACKGROUND = (245, 245, 245)
PLACEHOLDER = (200, 200, 200)


@dataclass(frozen=True)
class Tile:
    """One member: its caption and its bytes (None when they cannot be read)."""

    label: str
    data: bytes | None


def image_bytes(image: Image, session: Session | None = None) -> bytes | None:
    """The member's verified bytes; None if unreadable or no longer the image's (its sha256
    differs, and with a session its location is recorded as stale), so a tile never shows
    other pixels under the member's id."""
    from dataops.catalog.verify import read_verified

    try:
        return read_verified(image, session)
    except (DataopsError, OSError, ValueError):
        return None


def layout(count: int, tile: int = TILE) -> tuple[int, int, int, int]:
    """(columns, rows, width, height) of a sheet with ``count`` tiles."""
    shown = max(1, min(count, MAX_TILES))
    columns = min(COLUMNS, shown)
    rows = math.ceil(shown / columns)
    width = PAD + columns * (tile + PAD)
    height = TITLE + PAD + rows * (tile + CAPTION + PAD)
    return columns, rows, width, height


def _thumbnail(data: bytes | None, tile: int) -> PILImage.Image | None:
    from dataops.config import get_settings

    if data is None:
        return None
    try:
        img = PILImage.open(io.BytesIO(data))
        if img.width * img.height > get_settings().ingest.max_pixels:
            return None
        if img.format == "JPEG":
            img.draft("RGB", (tile, tile))
        upright = ImageOps.exif_transpose(img)
        upright.thumbnail((tile, tile))
        return upright.convert("RGB")
    except Exception:  # PIL raises many types for undecodable input; the tile says so
        return None


def render(tiles: list[Tile], *, title: str, tile: int | None = None) -> bytes:
    """The sheet as PNG bytes; at most ``MAX_TILES`` tiles, the title says when cut."""
    size = tile or TILE
    shown = tiles[:MAX_TILES]
    columns, _, width, height = layout(len(shown), size)
    sheet = PILImage.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=14)
    heading = title if len(tiles) <= MAX_TILES else f"{title} ({MAX_TILES} of {len(tiles)})"
    draw.text((PAD, PAD), heading, fill=(0, 0, 0), font=font)
    for k, item in enumerate(shown):
        x = PAD + (k % columns) * (size + PAD)
        y = TITLE + PAD + (k // columns) * (size + CAPTION + PAD)
        thumb = _thumbnail(item.data, size)
        if thumb is None:
            draw.rectangle((x, y, x + size - 1, y + size - 1), fill=PLACEHOLDER)
            draw.text((x + PAD, y + size // 2), "unavailable", fill=(80, 80, 80), font=font)
        else:
            sheet.paste(thumb, (x + (size - thumb.width) // 2, y + (size - thumb.height) // 2))
        draw.text((x, y + size + 3), item.label, fill=(0, 0, 0), font=font)
    info = PngInfo()
    info.add_text("Title", heading)
    info.add_text("dataops-tiles", str(len(shown)))
    out = io.BytesIO()
    sheet.save(out, format="PNG", pnginfo=info)
    return out.getvalue()
