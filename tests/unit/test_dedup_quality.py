"""Precision and recall of the default dedup settings on real photos and generated copies.

Originals: the 25 Kodak photos and the 40 clothing photos that sit closest (in pHash) to
another clothing photo, i.e. the different garments on the same backdrop that a single
hash mistakes for duplicates. Every transform is applied to every original, re-encoded in
the original's format and hashed the way ingest does.
"""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from dataops.catalog.hashing import Hashes, compute_hashes
from dataops.dedup.grouping import (
    DedupParams,
    ImageHashes,
    find_pairs,
    group_pairs,
    representative_rank,
)
from dataops.dedup.transforms import TRANSFORMS
from tests.support.corpus import CORPUS

N_CLOTHING = 40

# Minimum recall per transform at the defaults (measured values are printed by the test).
MIN_RECALL = {
    "resize": 1.0,
    "jpeg": 1.0,
    "brightness": 0.95,
    "text": 1.0,
    "hflip": 0.95,
    "crop5": 0.35,
    "rotate": 0.5,
    "crop10": 0.0,
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CORPUS.is_dir(), reason="needs the sample corpus"),
]


def hash_bytes(data: bytes) -> Hashes:
    """Decode and hash as ingest does: JPEG draft mode, then EXIF orientation."""
    with Image.open(io.BytesIO(data)) as img:
        if img.format == "JPEG":
            img.draft("L", (64, 64))
        return compute_hashes(ImageOps.exif_transpose(img))


def encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def hardest_clothing(count: int) -> list[Path]:
    """The clothing photos with the nearest pHash neighbour among the other photos."""
    files = sorted((CORPUS / "clothing-dataset").glob("*.jpg"))
    phash = np.array([hash_bytes(p.read_bytes()).phash for p in files], dtype=np.uint64)
    dist = np.bitwise_count(phash[:, None] ^ phash[None, :]).astype(np.int32)
    np.fill_diagonal(dist, 64)
    order = np.lexsort((np.arange(len(files)), dist.min(axis=1)))
    return [files[k] for k in order[:count]]


@pytest.fixture(scope="module")
def corpus_hashes() -> tuple[ImageHashes, np.ndarray, np.ndarray, list[str], np.ndarray]:
    originals = sorted((CORPUS / "kodak-photocd").glob("*.png")) + hardest_clothing(N_CLOTHING)
    names = ["original", *TRANSFORMS]
    hashes: list[Hashes] = []
    source: list[int] = []
    kind: list[int] = []
    pixels: list[int] = []
    for k, path in enumerate(originals):
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or "PNG"
            img = ImageOps.exif_transpose(img)
            img.load()
            rng = np.random.default_rng(k)
            variants = [(img, data)] + [
                (out, encode(out, fmt)) for out in (fn(img, rng) for fn in TRANSFORMS.values())
            ]
        for t, (variant, blob) in enumerate(variants):
            hashes.append(hash_bytes(blob))
            source.append(k)
            kind.append(t)
            pixels.append(variant.width * variant.height)
    ids = np.arange(len(hashes), dtype=np.int64)
    # Originals were ingested first: they win ties on size and become representatives.
    rank = representative_rank(ids, pixels, created=kind)
    return ImageHashes.from_hashes(ids, hashes), np.array(source), np.array(kind), names, rank


def test_default_settings_precision_and_recall(corpus_hashes) -> None:
    hashes, source, kind, names, rank = corpus_hashes
    params = DedupParams()

    grouping = group_pairs(hashes, find_pairs(hashes, params), rank, params)

    labels = grouping.labels
    originals = np.flatnonzero(kind == 0)
    orig_label = labels[originals][source]
    recall: dict[str, float] = {}
    for t, name in enumerate(names[1:], start=1):
        rows = np.flatnonzero(kind == t)
        recall[name] = float(((labels[rows] >= 0) & (labels[rows] == orig_label[rows])).mean())

    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    total_correct = total = 0
    for members in grouping.groups():
        rows = hashes.positions(members)
        for x in range(rows.shape[0]):
            for y in range(x + 1, rows.shape[0]):
                a, b = rows[x], rows[y]
                correct = int(source[a] == source[b])
                total_correct += correct
                total += 1
                for t in {kind[a], kind[b]}:
                    per_kind[names[t]][0] += correct
                    per_kind[names[t]][1] += 1
    precision = {name: c / n for name, (c, n) in per_kind.items()}

    print(f"\n{'transform':12s} {'recall':>7s} {'precision':>10s}")
    for name in names[1:]:
        print(f"{name:12s} {recall[name]:7.3f} {precision.get(name, float('nan')):10.3f}")
    print(f"overall pair precision {total_correct / total:.4f} over {total} grouped pairs")
    print(f"groups={len(grouping)} split_components={len(grouping.report.split_components)}")

    original_labels = labels[originals]
    grouped = original_labels[original_labels >= 0]
    assert np.unique(grouped).shape[0] == grouped.shape[0], "unrelated originals grouped"
    assert total_correct / total >= 0.99
    for name, minimum in MIN_RECALL.items():
        assert recall[name] >= minimum, (name, recall[name])
        if name in precision:
            assert precision[name] >= 0.99, (name, precision[name])


def test_single_phash_would_group_different_garments(corpus_hashes) -> None:
    """The hard negatives are real: without dHash confirmation some originals do group."""
    hashes, source, _kind, _, rank = corpus_hashes
    params = DedupParams(joint_radius=None)

    grouping = group_pairs(hashes, find_pairs(hashes, params), rank, params)

    wrong = sum(
        np.unique(source[hashes.positions(members)]).shape[0] > 1 for members in grouping.groups()
    )
    print(f"\ngroups mixing different originals with pHash alone: {wrong}")
    assert wrong > 0
