"""Synthetic catalog codes and timing helpers for the scale rows of ``benchmarks/dedup.py``."""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from dataops.dedup.views import ViewTable


def synthetic_codes(n: int, seed: int) -> np.ndarray:
    """64-bit codes shaped like a real catalog.

    10 % of images belong to near-duplicate clusters (2-5 copies, 0-6 bits from the
    original); the rest are drawn around 1,000 modes with each bit flipped with p = 0.25
    (real pHashes are skewed: similar scenes share most bits).
    """
    rng = np.random.default_rng(seed)
    modes = rng.integers(0, 2**64, size=1000, dtype=np.uint64)
    bits = np.uint64(1) << np.arange(64, dtype=np.uint64)
    n_background = int(n * 0.9)
    noise = np.zeros(n_background, dtype=np.uint64)
    for bit in bits:
        noise |= np.where(rng.random(n_background) < 0.25, bit, np.uint64(0))
    background = modes[rng.integers(0, modes.shape[0], size=n_background)] ^ noise
    copies: list[np.ndarray] = []
    remaining = n - n_background
    while remaining > 0:
        size = min(remaining, int(rng.integers(2, 6)))
        centre = background[rng.integers(0, n_background)] ^ bits[rng.integers(0, 64)]
        members = np.full(size, centre, dtype=np.uint64)
        for m in range(size):
            for b in rng.choice(64, size=int(rng.integers(0, 7)), replace=False):
                members[m] ^= bits[b]
        copies.append(members)
        remaining -= size
    codes = np.concatenate([background, *copies])
    return codes[rng.permutation(n)]


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM; ru_maxrss would carry the parent's over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Clock:
    """Records ``<phase>_s`` (wall) and ``<phase>_cpu`` (this process's CPU) per phase.

    CPU seconds over the thread count is what the phase takes on idle cores, which is the
    number to compare when other work shares the machine.
    """

    def __init__(self, out: dict[str, Any]) -> None:
        self.out = out
        self.phase = ""

    def __call__(self, phase: str) -> Clock:
        self.phase = phase
        return self

    def __enter__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def __exit__(self, *exc: object) -> None:
        self.out[f"{self.phase}_s"] = time.perf_counter() - self.wall
        self.out[f"{self.phase}_cpu"] = time.process_time() - self.cpu


# Bits a view's pHash differs from its own image's, per view (measured on the family corpus:
# trimmed 6, centre 90 % 13, centre 80 % 22, corners 20-21); the trimmed view exists for
# the 30 % of images with a border.
VIEW_FLIPS = (13, 22, 20, 20, 21, 21)
TRIMMED_FLIPS, TRIMMED_SHARE = 6, 0.3


def synthetic_views(phash: np.ndarray, seed: int) -> ViewTable:
    """View codes shaped like real ones: each a few bits' walk from its image's pHash."""
    rng = np.random.default_rng(seed + 3)
    n = phash.shape[0]
    bits = np.uint64(1) << np.arange(64, dtype=np.uint64)
    ids, view, codes = [], [], []
    with_border = np.flatnonzero(rng.random(n) < TRIMMED_SHARE)
    plan = [(k + 1, np.arange(n), f) for k, f in enumerate(VIEW_FLIPS)]
    for k, rows, flips in [(0, with_border, TRIMMED_FLIPS), *plan]:
        noise = np.zeros(rows.shape[0], dtype=np.uint64)
        for bit in bits:
            noise |= np.where(rng.random(rows.shape[0]) < flips / 64, bit, np.uint64(0))
        ids.append(rows)
        view.append(np.full(rows.shape[0], k, np.int8))
        codes.append(phash[rows] ^ noise)
    order = np.argsort(np.concatenate(ids), kind="stable")
    ph = np.concatenate(codes)[order]
    one_bit = np.uint64(1) << rng.integers(0, 64, size=ph.shape[0], dtype=np.uint64)
    return ViewTable(
        ids=np.concatenate(ids)[order].astype(np.int64),
        view=np.concatenate(view)[order],
        phash=ph,
        dhash=ph ^ one_bit,
    )


def views_of(views: ViewTable, ids: np.ndarray) -> ViewTable:
    """The rows of ``views`` that belong to ``ids``."""
    keep = np.isin(views.ids, ids)
    return ViewTable(views.ids[keep], views.view[keep], views.phash[keep], views.dhash[keep])
