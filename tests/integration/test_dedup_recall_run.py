"""`dedup run` with the recall stages on real photos: letterboxed, cropped, rotated and
captioned copies join their original through the view and geometric stages (recorded per
edge), unrelated clothing photos never do, an incremental run ends where a full one does,
and a run that dies after the stages leaves nothing the next run cannot redo."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageDraw
from sqlalchemy import func, select

from dataops.catalog.ingest import ingest
from dataops.catalog.models import Image
from dataops.db import session_scope
from dataops.dedup import service
from dataops.dedup.models import DupEdge, DupViews
from dataops.dedup.run import run_dedup
from dataops.dedup.schemas import DedupRunRequest, DedupSummary
from dataops.dedup.views import VIEW_NAMES
from dataops.dedup.viewstore import RECORD, load_views
from dataops.jobs.runner import PAUSE_POINTS
from tests.support.corpus import CORPUS

KODAK = CORPUS / "kodak-photocd"
pytestmark = pytest.mark.skipif(not KODAK.is_dir(), reason="needs the sample corpus")


def _letterbox(img: PILImage.Image) -> PILImage.Image:
    dy = round(img.height * 0.1)
    out = PILImage.new("RGB", (img.width, img.height + 2 * dy), (255, 255, 255))
    out.paste(img, (0, dy))
    return out


def _crop(img: PILImage.Image) -> PILImage.Image:
    return img.crop((round(img.width * 0.1), round(img.height * 0.08), img.width, img.height))


def _rotate(img: PILImage.Image) -> PILImage.Image:
    return img.rotate(4.0, resample=PILImage.Resampling.BILINEAR, fillcolor=(0, 0, 0))


def _caption(img: PILImage.Image) -> PILImage.Image:
    out = img.copy()
    bar = round(img.height * 0.14)
    ImageDraw.Draw(out).rectangle((0, img.height - bar, img.width, img.height), fill=(20, 20, 20))
    return out


EDITS = {"letterbox": _letterbox, "crop": _crop, "rotate": _rotate, "caption": _caption}


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two Kodak originals with four clothing photos, then each original's four edits."""
    root = tmp_path_factory.mktemp("recall-run")
    first, second = root / "first", root / "second"
    first.mkdir()
    second.mkdir()
    for path in sorted(KODAK.glob("*.png"))[7:9]:
        shutil.copy(path, first / path.name)
        with PILImage.open(path) as img:
            rgb = img.convert("RGB")
        for name, edit in EDITS.items():
            edit(rgb).save(second / f"{path.stem}_{name}.png")
    for path in sorted((CORPUS / "clothing-dataset").glob("*.jpg"))[:4]:
        shutil.copy(path, first / path.name)
    return first, second


@pytest.fixture(autouse=True)
def _one_process(catalog: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataops.config import reset_settings

    monkeypatch.setenv("DATAOPS_INGEST__WORKERS", "1")
    reset_settings()


def _ingest(folder: Path) -> None:
    ingest([str(folder)], transaction=session_scope)


def _run(**options: object) -> DedupSummary:
    with session_scope() as s:
        return run_dedup(s, DedupRunRequest.model_validate(options), actor="test")


def _groups() -> set[frozenset[str]]:
    members: dict[int, set[str]] = defaultdict(set)
    with session_scope() as s:
        for uri, group in s.execute(select(Image.uri, Image.dup_group_id)):
            if group is not None:
                members[group].add(Path(uri).name)
    return {frozenset(m) for m in members.values()}


def _stages() -> dict[str, str]:
    """Each edge's stage, keyed by the later file's name."""
    with session_scope() as s:
        names = dict(s.execute(select(Image.id, Image.uri)).all())
        rows = s.execute(select(DupEdge.image_a_id, DupEdge.image_b_id, DupEdge.stage)).all()
    return {f"{Path(names[a]).name}~{Path(names[b]).name}": stage for a, b, stage in rows}


def _expected(first: Path) -> set[frozenset[str]]:
    return {frozenset({p.name, *(f"{p.stem}_{e}.png" for e in EDITS)}) for p in first.glob("*.png")}


def test_edits_join_their_original_through_the_stages_incremental_equals_full(
    photos: tuple[Path, Path],
) -> None:
    first, second = photos
    _ingest(first)
    before = _run()
    assert before.views_computed == before.images == 6
    _ingest(second)

    summary = _run()

    assert summary.new_images == 8
    assert summary.views_computed == 8, "views are computed once per image"
    assert summary.geometric_checks > 0
    assert _groups() == _expected(first), "every edit with its original, no clothing photo"
    stages = set(_stages().values())
    assert {"view", "geometric"} <= stages, stages
    assert sum(summary.stage_pairs.values()) == summary.pairs
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(DupViews)) == 14
        ids = s.scalars(select(Image.id)).all()
        table = load_views(s, np.array(sorted(ids), dtype=np.int64))
    assert len(table) >= 14 * (len(VIEW_NAMES) - 1)
    edges = _stages()
    with session_scope() as s:
        group = s.scalars(select(Image.dup_group_id).where(Image.dup_group_id.is_not(None))).first()
        assert group is not None
        shown = service.group_detail(s, group)
    shown_stages = {m.stage for m in shown.members if m.image_id != shown.representative}
    assert shown_stages & {"view", "geometric"}, "dedup show names the stage of each member"

    full = _run(full=True)

    assert full.views_computed == 0, "stored views are reused"
    assert not full.changed, "an incremental run ends where a full recompute does"
    assert _groups() == _expected(first)
    assert _stages() == edges

    tight = _run(full=True, radius=2)

    stored = list(_stages().values())
    assert tight.stage_pairs["hash"] < summary.stage_pairs["hash"] + before.stage_pairs["hash"]
    for stage in ("hash", "view", "geometric"):
        assert stored.count(stage) == tight.stage_pairs[stage], "edges take the stage found now"


def test_a_run_that_dies_after_the_stages_is_redone_by_the_next(
    photos: tuple[Path, Path],
) -> None:
    first, second = photos
    _ingest(first)
    _run()
    _ingest(second)

    def die() -> None:
        raise KeyboardInterrupt("killed after the recall stages")

    PAUSE_POINTS["dedup.recalled"] = die
    try:
        with pytest.raises(KeyboardInterrupt):
            _run()
    finally:
        PAUSE_POINTS.pop("dedup.recalled")
    with session_scope() as s:
        stored = s.scalars(select(DupViews.codes)).all()
    assert len(stored) == 6, "views of the dead run were not committed"
    assert all(len(c) == RECORD for c in stored)

    summary = _run()

    assert summary.new_images == 8 and summary.views_computed == 8
    assert _groups() == _expected(first)
    assert not _run(full=True).changed
