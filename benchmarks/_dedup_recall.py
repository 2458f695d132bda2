"""Recall by edit family on real photos, for ``benchmarks/dedup.py``.

Originals: the Kodak and Unsplash photos of the corpus (downscaled to 1,024 px on the longest
side, as a data set would hold them), each with every edit of ``benchmarks/_edits.py``; the
1,000 clothing photos join unedited as distractors (different garments on one backdrop).
Recall is pairwise within each family and original: every original-edit and edit-edit pair
(dataops: pairs inside one group; imagededup: reported pairs, as it makes no groups).
"""

from __future__ import annotations

import io
import itertools
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from benchmarks._baseline import imagededup_phash, imagededup_version
from benchmarks._edits import FAMILIES
from dataops.catalog.hashing import Hashes, compute_hashes
from dataops.dedup.grouping import (
    DedupParams,
    ImageHashes,
    confirm_pairs,
    find_pairs,
    group_pairs,
    representative_rank,
)
from dataops.dedup.index import HashIndex, Pairs
from dataops.dedup.stages import (
    GEOMETRIC,
    HASH,
    VIEW,
    StagedPairs,
    StageParams,
    closest_candidates,
    group_staged,
    verify_candidates,
)
from dataops.dedup.views import Views, ViewTable, view_hashes, view_pairs, working_gray

IMAGEDEDUP_THRESHOLD = 10


@dataclass
class Corpus:
    paths: list[Path]
    source: np.ndarray  # original number, -1 for a distractor
    family: list[str]
    edit: list[str]
    hashes: ImageHashes
    views: list[Views]
    pixels: list[int]
    view_ms: float = 0.0
    rank: np.ndarray = field(default_factory=lambda: np.empty(0))


def build(out_dir: Path, corpus: Path, quick: bool) -> Corpus:
    """Write the edited copies and hash everything as ingest and the view stage do."""
    originals = sorted((corpus / "kodak-photocd").glob("*.png"))
    originals += sorted((corpus / "unsplash-squeezesoftware").glob("*.jpg"))
    distractors = sorted((corpus / "clothing-dataset").glob("*.jpg"))
    if quick:
        originals, distractors = originals[:4] + originals[-2:], distractors[:100]
    paths: list[Path] = []
    source: list[int] = []
    family: list[str] = []
    edit: list[str] = []
    for k, path in enumerate(originals):
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img).convert("RGB")
            img.thumbnail((1024, 1024))
        rng = np.random.default_rng(k)
        variants = [("original", "original", img)]
        variants += [
            (f, name, fn(img, rng)) for f, edits in FAMILIES.items() for name, fn in edits.items()
        ]
        for j, (fam, name, variant) in enumerate(variants):
            target = out_dir / f"{k:02d}_{j:02d}.jpg"
            variant.save(target, quality=92)
            paths.append(target)
            source.append(k)
            family.append(fam)
            edit.append(name)
    for path in distractors:
        target = out_dir / f"clothing_{path.name}"
        os.symlink(path, target)
        paths.append(target)
        source.append(-1)
        family.append("distractor")
        edit.append("")
    hashes: list[Hashes] = []
    views: list[Views] = []
    pixels: list[int] = []
    view_s = 0.0
    for path in paths:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as img:
            pixels.append(img.width * img.height)
            img.draft("L", (64, 64))
            hashes.append(compute_hashes(ImageOps.exif_transpose(img)))
        start = time.process_time()
        with Image.open(io.BytesIO(data)) as img:
            views.append(view_hashes(working_gray(img)))
        view_s += time.process_time() - start
    ids = np.arange(len(paths), dtype=np.int64)
    is_original = np.array([f == "original" for f in family])
    return Corpus(
        paths=paths,
        source=np.array(source),
        family=family,
        edit=edit,
        hashes=ImageHashes.from_hashes(ids, hashes),
        views=views,
        pixels=pixels,
        view_ms=1000 * view_s / len(paths),
        rank=representative_rank(ids, pixels, created=(~is_original).astype(np.int64)),
    )


def file_pixels(paths: list[Path]) -> Any:
    """A pixel source reading each image from its file (as the run reads blobs)."""

    def source(image_id: int) -> np.ndarray:
        with Image.open(paths[image_id]) as img:
            return working_gray(img)

    return source


@dataclass
class Run:
    label: str
    pairs: set[tuple[int, int]]
    seconds: float
    stages: dict[str, int] = field(default_factory=dict)
    candidates: int = 0
    candidate_ms: float = 0.0
    candidate_later: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))


def run_dataops(c: Corpus, stage_params: StageParams | None) -> Run:
    """dataops' stages over the corpus; ``None`` runs the hash stage alone (the old default)."""
    params = DedupParams()
    h = c.hashes
    start = time.perf_counter()
    if stage_params is None:
        grouping = group_pairs(h, find_pairs(h, params), c.rank, params)
        return Run(
            "dataops hash stage only (before)",
            _grouped(grouping.labels),
            time.perf_counter() - start,
        )
    index = HashIndex.build(h.ids, h.phash, gpu=False)
    assert h.phash_flip is not None
    raw = Pairs.concat(
        [index.range_pairs(params.radius), index.mirror_pairs(h.phash_flip, params.radius)]
    )
    hashed = confirm_pairs(h, raw, params)
    by_stage = {HASH: hashed}
    rejected = [raw]
    if stage_params.views:
        table = ViewTable.from_views(h.ids, c.views)
        view_params = DedupParams(radius=stage_params.view_radius)
        hits = view_pairs(index, h, table, view_params)
        by_stage[VIEW] = hits.confirmed
        rejected.append(hits.rejected)
    n_cand, cand_s = 0, 0.0
    later = np.empty(0, np.int64)
    if stage_params.geometric:
        known = Pairs.concat(list(by_stage.values()))
        cands = closest_candidates(Pairs.concat(rejected), known, stage_params.candidates_per_image)
        t = time.process_time()
        by_stage[GEOMETRIC] = verify_candidates(cands, file_pixels(c.paths))
        cand_s = time.process_time() - t
        n_cand = len(cands)
        later = cands.j
    staged = StagedPairs.of(**by_stage)
    labels = group_staged(h, staged, c.rank, params)
    label = "dataops hash + views" + (" + geometric (default)" if stage_params.geometric else "")
    return Run(
        label,
        _grouped(labels),
        time.perf_counter() - start,
        {s: staged.count(s) for s in (HASH, VIEW, GEOMETRIC)},
        n_cand,
        1000 * cand_s / max(1, n_cand),
        later,
    )


def run_imagededup(c: Corpus, folder: Path) -> Run | None:
    version = imagededup_version()
    if version is None:
        return None
    phash = imagededup_phash()
    by_name = {p.name: k for k, p in enumerate(c.paths)}
    start = time.perf_counter()
    encodings = phash.encode_images(image_dir=str(folder), num_enc_workers=2)
    dupes = phash.find_duplicates(
        encoding_map=encodings, max_distance_threshold=IMAGEDEDUP_THRESHOLD, num_dist_workers=2
    )
    found = {
        (min(by_name[a], by_name[b]), max(by_name[a], by_name[b]))
        for a, others in dupes.items()
        for b in others
    }
    return Run(
        f"imagededup {version} PHash ≤ {IMAGEDEDUP_THRESHOLD}", found, time.perf_counter() - start
    )


def _grouped(labels: np.ndarray) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    order = np.argsort(labels, kind="stable")
    order = order[labels[order] >= 0]
    for _, rows in itertools.groupby(order.tolist(), key=lambda r: int(labels[r])):
        members = sorted(rows)
        out.update(itertools.combinations(members, 2))
    return out


def truth(c: Corpus) -> dict[tuple[int, str], set[tuple[int, int]]]:
    """Pairs that should be found: per (original, family), every pair of original + edits."""
    out: dict[tuple[int, str], set[tuple[int, int]]] = {}
    rows_of: dict[int, list[int]] = {}
    for row, s in enumerate(c.source.tolist()):
        if s >= 0:
            rows_of.setdefault(s, []).append(row)
    for s, rows in rows_of.items():
        original = next(r for r in rows if c.family[r] == "original")
        for fam in FAMILIES:
            members = [original] + [r for r in rows if c.family[r] == fam]
            out[(s, fam)] = set(itertools.combinations(sorted(members), 2))
    return out


def metrics(
    c: Corpus, run: Run, expected: dict[tuple[int, str], set[tuple[int, int]]]
) -> dict[str, Any]:
    recall = {}
    for fam in FAMILIES:
        wanted = set().union(*(p for (s, f), p in expected.items() if f == fam))
        recall[fam] = len(wanted & run.pairs) / max(1, len(wanted))
    wanted_all = set().union(*expected.values())
    src = c.source
    wrong = [(a, b) for a, b in run.pairs if src[a] != src[b] or src[a] < 0]
    distractor = sum(src[a] < 0 and src[b] < 0 for a, b in wrong)
    return {
        "recall": recall,
        "all": len(wanted_all & run.pairs) / len(wanted_all),
        "precision": 1 - len(wrong) / len(run.pairs) if run.pairs else float("nan"),
        "wrong": len(wrong),
        "distractor": distractor,
        "pairs": len(run.pairs),
    }


def per_edit(c: Corpus, run: Run) -> dict[str, float]:
    """Original-edit recall per edit (strength)."""
    original = {int(s): r for r, s in enumerate(c.source.tolist()) if c.family[r] == "original"}
    hits: dict[str, list[bool]] = {}
    for row, s in enumerate(c.source.tolist()):
        if s < 0 or c.family[row] == "original":
            continue
        pair = (min(row, original[s]), max(row, original[s]))
        hits.setdefault(f"{c.family[row]}: {c.edit[row]}", []).append(pair in run.pairs)
    return {k: float(np.mean(v)) for k, v in hits.items()}


def report(runs: Iterable[Run], c: Corpus) -> dict[str, Any]:
    """Print the family table and the per-strength table; return the default run's rates."""
    runs = list(runs)
    expected = truth(c)
    n_orig = int(c.source.max()) + 1
    n_dis = int((c.source < 0).sum())
    print(
        f"### Recall by edit family: {n_orig} Kodak + Unsplash photos × "
        f"{sum(len(e) for e in FAMILIES.values())} edits, {n_dis:,} clothing photos as "
        f"distractors ({len(c.paths):,} files)\n"
    )
    print(
        "Pairwise recall within each family (original↔edit and edit↔edit). Precision: share "
        "of reported pairs from one original. False pairs: pairs of two different clothing "
        "photos. View hashes cost "
        f"{c.view_ms:.1f} ms of CPU per image (7 pHashes from one 512 px decode).\n"
    )
    fams = list(FAMILIES)
    print(
        "| method | "
        + " | ".join(fams)
        + " | all | precision | false pairs (clothing) | wrong pairs | pairs by stage | time |"
    )
    print("|---|" + "---:|" * (len(fams) + 4) + "---|---:|")
    for run in runs:
        m = metrics(c, run, expected)
        cells = " | ".join(f"{m['recall'][f]:.3f}" for f in fams)
        stages = ", ".join(f"{k} {v:,}" for k, v in run.stages.items()) or "—"
        if run.candidates:
            stages += f"; {run.candidates:,} geometric checks ({run.candidate_ms:.1f} ms CPU each)"
        print(
            f"| {run.label} | {cells} | {m['all']:.3f} | {m['precision']:.4f} | "
            f"{m['distractor']} | {m['wrong']} | {stages} | {run.seconds:.1f} s |"
        )
    print()
    edits = [per_edit(c, r) for r in runs]
    print("Original↔edit recall per edit and strength:\n")
    print("| edit | " + " | ".join(r.label for r in runs) + " |")
    print("|---|" + "---:|" * len(runs))
    for name in edits[0]:
        print(f"| {name} | " + " | ".join(f"{e[name]:.2f}" for e in edits) + " |")
    print()
    default = next((r for r in runs if r.candidates), None)
    if default is None:
        return {"candidates_per_image": 0.0, "candidate_ms": 0.0, "view_ms": c.view_ms}
    # Each candidate belongs to its later image: the rate among edited copies and among
    # unrelated photos, mixed as the synthetic scale codes are (10 % near-duplicates).
    edited = (c.source >= 0) & np.array([f != "original" for f in c.family])
    distractor = c.source < 0
    later = default.candidate_later
    rate_edited = float(edited[later].sum()) / max(1, int(edited.sum()))
    rate_distractor = float(distractor[later].sum()) / max(1, int(distractor.sum()))
    rate = 0.1 * rate_edited + 0.9 * rate_distractor
    print(
        f"Geometric checks per image: {rate_edited:.3f} for edited copies, "
        f"{rate_distractor:.3f} for unrelated photos; {rate:.3f} in a catalog with 10 % "
        f"near-duplicates (the scale rows' mix), {default.candidate_ms:.1f} ms of CPU per check "
        "including reading and decoding the images.\n"
    )
    return {
        "candidates_per_image": rate,
        "candidate_ms": default.candidate_ms,
        "view_ms": c.view_ms,
    }
