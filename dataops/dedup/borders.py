"""Uniform borders (letterbox, pillarbox, passe-partout) found and trimmed before hashing.

A 10 % black bar shifts every DCT coefficient of the pHash, so a letterboxed copy lands far
from its original. Trimming rows and columns that are all one colour brings the picture
back to what was framed. The test is strict (nearly every pixel of a row within a few levels
of the edge colour) so a real sky or wall is rarely cut; when it is, the untrimmed hash still
matches as before, because the trimmed view is only ever an extra code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOLERANCE = 12
"""Grey levels a border pixel may differ from the border colour (JPEG ringing, dithering)."""
COVERAGE = 0.98
"""Share of a row or column that must be the border colour for it to count as border."""
MAX_TRIM = 0.3
"""At most this share of a side is trimmed: more is a picture of a wall, not a border."""
MIN_TRIM = 2
"""Fewer rows than this are edge noise, not a border."""


@dataclass(frozen=True, slots=True)
class Box:
    """A crop box in pixels, PIL order: left, top, right (exclusive), bottom (exclusive)."""

    left: int
    top: int
    right: int
    bottom: int

    def trimmed(self, width: int, height: int) -> bool:
        """Whether any side was cut from an image of this size."""
        return (self.left, self.top, self.right, self.bottom) != (0, 0, width, height)


def _border_run(lines: np.ndarray, limit: int) -> int:
    """How many leading lines (rows of ``lines``) are the colour of the first line's median."""
    if lines.shape[0] == 0:
        return 0
    colour = np.median(lines[0])
    close = np.abs(lines[:limit].astype(np.int16) - colour) <= TOLERANCE
    uniform = close.mean(axis=1) >= COVERAGE
    run = int(np.argmin(uniform)) if not uniform.all() else int(uniform.shape[0])
    return run if run >= MIN_TRIM else 0


def find_borders(gray: np.ndarray) -> Box:
    """The box inside uniform borders of an 8-bit grayscale array (H, W).

    Each side is measured on its own, so letterbox (top and bottom), pillarbox (left and
    right) and one-sided bars all trim; each side's colour is its own (a black bar and a
    white caption strip may sit on the same image).
    """
    height, width = gray.shape
    max_rows, max_cols = int(height * MAX_TRIM), int(width * MAX_TRIM)
    top = _border_run(gray, max_rows)
    bottom = _border_run(gray[::-1], max_rows)
    left = _border_run(gray.T, max_cols)
    right = _border_run(gray.T[::-1], max_cols)
    return Box(left, top, width - right, height - bottom)


def trim(gray: np.ndarray) -> np.ndarray:
    """``gray`` without its uniform borders (a view, not a copy)."""
    box = find_borders(gray)
    return gray[box.top : box.bottom, box.left : box.right]
