"""The recall stages on real photos: borders, views, geometric checks, incremental = full."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from dataops.catalog.hashing import compute_hashes
from dataops.dedup.borders import find_borders
from dataops.dedup.geometric import features, verify
from dataops.dedup.grouping import DedupParams, ImageHashes
from dataops.dedup.index import HashIndex, Pairs
from dataops.dedup.stages import (
    GEOMETRIC,
    HASH,
    VIEW,
    StagedPairs,
    StageParams,
    closest_candidates,
    group_staged,
    run_stages,
)
from dataops.dedup.views import ViewTable, view_hashes, working_gray
from tests.support.corpus import CORPUS

KODAK = CORPUS / "kodak-photocd"
CLOTHING = CORPUS / "clothing-dataset"
pytestmark = pytest.mark.skipif(not KODAK.is_dir(), reason="needs the sample corpus")


def _photo(k: int) -> Image.Image:
    with Image.open(sorted(KODAK.glob("*.png"))[k]) as img:
        return img.convert("RGB")


def _gray(img: Image.Image) -> np.ndarray:
    return working_gray(img.copy())


def _letterbox(img: Image.Image, share: float, colour: tuple[int, int, int]) -> Image.Image:
    dy = round(img.height * share)
    out = Image.new("RGB", (img.width, img.height + 2 * dy), colour)
    out.paste(img, (0, dy))
    return out


def _crop_corner(img: Image.Image, share: float) -> Image.Image:
    return img.crop((round(img.width * share), round(img.height * share), img.width, img.height))


def _rotate(img: Image.Image, degrees: float, *, expand: bool = False) -> Image.Image:
    return img.rotate(
        degrees, resample=Image.Resampling.BILINEAR, expand=expand, fillcolor=(0, 0, 0)
    )


def _distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (30, 140, 200)])
def test_borders_are_found_on_a_letterboxed_photo(colour: tuple[int, int, int]) -> None:
    img = _photo(0)
    boxed = _letterbox(img, 0.1, colour)
    gray = np.asarray(ImageOps.grayscale(boxed))
    box = find_borders(gray)
    dy = round(img.height * 0.1)
    assert abs(box.top - dy) <= 2 and abs((gray.shape[0] - box.bottom) - dy) <= 2
    assert box.left <= 1 and box.right >= gray.shape[1] - 1


def test_photos_without_borders_are_not_trimmed() -> None:
    for path in sorted(KODAK.glob("*.png"))[:8]:
        with Image.open(path) as img:
            gray = _gray(img)
        box = find_borders(gray)
        kept = (box.right - box.left) * (box.bottom - box.top) / gray.size
        assert kept > 0.95, path.name


def test_trimmed_view_of_a_letterboxed_copy_matches_the_original() -> None:
    img = _photo(1)
    original = compute_hashes(img).phash
    boxed = view_hashes(_gray(_letterbox(img, 0.1, (0, 0, 0))))
    trimmed = boxed.hashes[0]
    assert trimmed is not None
    full = compute_hashes(_letterbox(img, 0.1, (0, 0, 0))).phash
    assert _distance(trimmed.phash, original) <= StageParams().view_radius
    assert _distance(trimmed.phash, original) < _distance(full, original)


def test_a_corner_view_of_the_original_matches_an_off_centre_crop() -> None:
    img = _photo(2)
    crop = compute_hashes(_crop_corner(img, 0.1)).phash
    views = view_hashes(_gray(img))
    best = min(_distance(h.phash, crop) for _, h in views.codes())
    assert best <= StageParams().view_radius
    assert _distance(compute_hashes(img).phash, crop) > 10


def test_geometry_confirms_rotations_and_crops_of_a_photo() -> None:
    img = _photo(3)
    base = features(_gray(img))
    for edit in (_rotate(img, 5.0), _crop_corner(img, 0.1), _rotate(img, -3.0)):
        assert verify(base, features(_gray(edit))).ok


def test_geometry_refuses_different_garments_on_one_backdrop() -> None:
    files = sorted(CLOTHING.glob("*.jpg"))[:40]
    hashes = []
    for path in files:
        with Image.open(path) as img:
            hashes.append(compute_hashes(img).phash)
    codes = np.array(hashes, dtype=np.uint64)
    dist = np.bitwise_count(codes[:, None] ^ codes[None, :])
    np.fill_diagonal(dist, 64)
    closest = np.dstack(np.unravel_index(np.argsort(dist, axis=None)[:20:2], dist.shape))[0]
    feats = {}
    for a, b in closest.tolist():
        for k in (a, b):
            if k not in feats:
                with Image.open(files[k]) as img:
                    feats[k] = features(_gray(img))
        assert not verify(feats[a], feats[b]).ok, (files[a].name, files[b].name)


def test_closest_candidates_keep_each_later_images_nearest_and_skip_known() -> None:
    rejected = Pairs(
        np.array([1, 2, 3, 1, 4]), np.array([5, 5, 5, 6, 6]), np.array([12, 11, 11, 13, 9])
    )
    known = Pairs(np.array([4]), np.array([6]), np.array([0]))
    got = closest_candidates(rejected, known, 2)
    assert list(zip(got.i.tolist(), got.j.tolist(), strict=True)) == [(1, 6), (2, 5), (3, 5)]


def test_staged_pairs_keep_the_first_stage_that_matched() -> None:
    one = Pairs(np.array([1]), np.array([2]), np.array([3]))
    two = Pairs(np.array([2, 1]), np.array([1, 3]), np.array([5, 6]))
    staged = StagedPairs.of(geometric=two, hash=one)
    assert staged.stage.tolist() == [HASH, GEOMETRIC]
    assert staged.pairs.j.tolist() == [2, 3]


def _edited_catalog() -> tuple[list[np.ndarray], ImageHashes, ViewTable]:
    """Two Kodak photos, each with a letterboxed copy and two off-centre crops, and 12
    clothing photos; ids in that order."""
    grays: list[np.ndarray] = []
    hashes = []
    for k in (5, 6):
        img = _photo(k)
        for variant in (
            img,
            _letterbox(img, 0.1, (255, 255, 255)),
            _crop_corner(img, 0.1),
            _crop_corner(img, 0.05),
        ):
            grays.append(_gray(variant))
            hashes.append(compute_hashes(variant))
    for path in sorted(CLOTHING.glob("*.jpg"))[:12]:
        with Image.open(path) as img:
            grays.append(_gray(img))
            hashes.append(compute_hashes(ImageOps.exif_transpose(img)))
    ids = np.arange(len(grays), dtype=np.int64)
    views = ViewTable.from_views(ids, [view_hashes(g) for g in grays])
    return grays, ImageHashes.from_hashes(ids, hashes), views


def test_stages_group_every_edit_with_its_original_and_nothing_else() -> None:
    grays, hashes, views = _edited_catalog()
    params = DedupParams()
    index = HashIndex.build(hashes.ids, hashes.phash, gpu=False)
    staged = run_stages(index, hashes, views, params, StageParams(), grays.__getitem__)
    assert {VIEW, GEOMETRIC} <= set(staged.stage.tolist())
    labels = group_staged(hashes, staged, np.arange(len(hashes)), params)
    assert len(set(labels[:4].tolist())) == 1 and labels[0] >= 0
    assert len(set(labels[4:8].tolist())) == 1 and labels[4] >= 0
    assert labels[0] != labels[4]
    assert (labels[8:] == -1).all()


def test_incremental_stages_equal_a_full_run() -> None:
    grays, hashes, views = _edited_catalog()
    params, stage = DedupParams(), StageParams()
    full_index = HashIndex.build(hashes.ids, hashes.phash, gpu=False)
    full = run_stages(full_index, hashes, views, params, stage, grays.__getitem__)
    # The catalog arrives in two batches: each photo's original first, the copies later.
    first = np.array([0, 4, *range(8, 14)])
    later = np.setdiff1d(hashes.ids, first)
    old = hashes.subset(first)
    old_views = ViewTable.from_views(first, [view_hashes(grays[k]) for k in first.tolist()])
    old_index = HashIndex.build(first, old.phash, gpu=False)
    before = run_stages(old_index, old, old_views, params, stage, grays.__getitem__)
    index = HashIndex.build(hashes.ids, hashes.phash, gpu=False)
    after = run_stages(
        index,
        hashes,
        views,
        params,
        stage,
        grays.__getitem__,
        new_ids=later,
        old_index=HashIndex.build(first, old.phash, gpu=False),
    )
    merged = StagedPairs.of(
        **{
            s: Pairs.concat(
                [
                    Pairs(
                        p.pairs.i[p.stage == s], p.pairs.j[p.stage == s], p.pairs.dist[p.stage == s]
                    )
                    for p in (before, after)
                ]
            )
            for s in (HASH, VIEW, GEOMETRIC)
        }
    )
    assert merged.pairs.i.tolist() == full.pairs.i.tolist()
    assert merged.pairs.j.tolist() == full.pairs.j.tolist()
    assert merged.stage.tolist() == full.stage.tolist()


def test_staged_groups_keep_two_steps_and_split_longer_chains() -> None:
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 2**63, size=5, dtype=np.uint64)
    hashes = ImageHashes(
        ids=np.arange(5, dtype=np.int64), phash=codes, dhash=codes, phash_flip=~codes
    )
    # 0-1-2-3-4: a chain of geometric pairs between otherwise unrelated codes.
    chain = Pairs(np.arange(4), np.arange(1, 5), np.zeros(4, np.int32))
    labels = group_staged(hashes, StagedPairs.of(geometric=chain), np.arange(5), DedupParams())
    assert labels[0] == labels[1] == labels[2]
    assert labels[3] != labels[0]
