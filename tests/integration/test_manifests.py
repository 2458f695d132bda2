"""Manifests over a real catalog, on SQLite and PostgreSQL: content addressing, immutability,
leakage-safe splits across generations, verification, diffs, datasheets and the loader."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from dataops.audits.models import Audit
from dataops.catalog.ingest import ingest
from dataops.catalog.models import OK, Image
from dataops.db import get_engine, session_scope
from dataops.dedup.models import DupGroup
from dataops.events.models import Event
from dataops.labeling.models import ACCEPTED, Annotator, Guideline, Vendor
from dataops.labeling.service import add_label_version
from dataops.manifests import datasheet, exporting, models, service
from dataops.manifests.create import create_manifest
from dataops.manifests.diff import diff_manifests
from dataops.manifests.errors import (
    EmptyManifest,
    ManifestError,
    ManifestExists,
    ManifestTampered,
)
from dataops.manifests.schemas import ManifestRequest
from dataops.manifests.splits import assign_splits, group_key, plan_splits
from dataops.manifests.verify import verify_manifest
from dataops.selection.models import Batch, BatchItem
from dataops.storage import get_store

CLASSES = ("dress", "shirt", "hat")
HALVES = "train=0.5,test=0.5"


@pytest.fixture
def photos(tmp_path: Path, corpus: Path) -> Path:
    """Sixteen small product photos and one truncated JPEG (quarantined at ingest)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for src in sorted((corpus / "clothing-dataset").glob("*.jpg"))[:16]:
        shutil.copy(src, folder / src.name)
    shutil.copy(
        corpus / "cameratrapai-testdata" / "african_elephants_truncated_file.jpg",
        folder / "truncated.jpg",
    )
    return folder


def _ingest(*paths: Path, copy: bool = True) -> None:
    ingest([str(p) for p in paths], transaction=session_scope, copy=copy)


def _images() -> list[Image]:
    with session_scope() as s:
        return list(s.scalars(select(Image).where(Image.status == OK).order_by(Image.sha256)))


def _accept(image_id: int, cls: str, **extra: Any) -> int:
    with session_scope() as s:
        version, _ = add_label_version(
            s,
            image_id=image_id,
            payload={"class": cls},
            source="csv",
            source_id=f"{image_id}-{cls}-{extra.get('annotator_id')}",
            status=ACCEPTED,
            **extra,
        )
        return version.id


@pytest.fixture
def labeled(catalog: str, photos: Path) -> list[Image]:
    """The usable photos, each with one accepted label, in sha256 order."""
    _ingest(photos)
    images = _images()
    for i, image in enumerate(images):
        _accept(image.id, CLASSES[i % len(CLASSES)])
    return images


def _create(name: str, **options: Any) -> models.Manifest:
    with session_scope() as s:
        return create_manifest(s, ManifestRequest(name=name, **options), actor="tester")


def _rows(manifest_id: str) -> dict[str, dict[str, Any]]:
    with session_scope() as s:
        rows = s.execute(
            select(models.ManifestRow).where(models.ManifestRow.content_hash == manifest_id)
        ).scalars()
        return {
            r.sha256: {"split": r.split, "label": r.label, "group": r.dup_group_id} for r in rows
        }


def _group(*image_ids: int) -> int:
    """Put images in one duplicate group (what dedup records), returning the group id."""
    with session_scope() as s:
        group = DupGroup(representative_id=image_ids[0], size=len(image_ids), methods="phash")
        s.add(group)
        s.flush()
        s.execute(update(Image).where(Image.id.in_(image_ids)).values(dup_group_id=group.id))
        return group.id


def _join(group_id: int, *image_ids: int) -> None:
    with session_scope() as s:
        s.execute(update(Image).where(Image.id.in_(image_ids)).values(dup_group_id=group_id))


def _near_duplicate(src: str, dest: Path) -> Path:
    """A resized, recompressed copy: new bytes, the same picture."""
    with PILImage.open(src) as img:
        img.convert("RGB").resize((img.width * 9 // 10, img.height * 9 // 10)).save(
            dest, quality=80
        )
    return dest


# --- content addressing -----------------------------------------------------------------------


def test_same_catalog_gives_same_id_and_two_names_share_one_copy_of_rows(
    labeled: list[Image],
) -> None:
    first = _create("gen1")
    second = _create("gen1-again")
    assert first.content_hash == second.content_hash
    assert first.content_hash.startswith("sha256:")
    assert first.row_count == len(labeled) == sum(first.split_counts.values())
    with session_scope() as s:
        stored = s.scalar(
            select(func.count()).where(models.ManifestRow.content_hash == first.content_hash)
        )
        detail = service.manifest_detail(s, service.get_manifest(s, first.content_hash))
        events = list(s.scalars(select(Event).where(Event.action == "manifest.created")))
    assert stored == len(labeled)
    assert detail.names == ["gen1", "gen1-again"]
    assert detail.name == "gen1"
    assert {e.entity_id for e in events} == {"gen1", "gen1-again"}
    assert all(e.actor == "tester" for e in events)
    assert [e.details["rows_stored"] for e in sorted(events, key=lambda e: e.id)] == [True, False]
    body = Path(service.body_location(first))
    assert body.read_bytes().count(b"\n") == len(labeled) + 1


def test_label_image_or_seed_changes_give_a_new_id(labeled: list[Image], photos: Path) -> None:
    base = _create("base", seed=1).content_hash
    assert _create("other-seed", seed=2).content_hash != base
    relabel_id = _accept(labeled[0].id, "scarf")
    relabelled = _create("relabelled", seed=1)
    assert relabelled.content_hash != base
    assert _rows(relabelled.content_hash)[labeled[0].sha256]["label"] == {"class": "scarf"}
    extra = _near_duplicate(labeled[1].uri, photos / "extra.jpg")
    _ingest(extra)
    (new_image,) = [i for i in _images() if i.sha256 not in {x.sha256 for x in labeled}]
    _accept(new_image.id, "hat")
    grown = _create("grown", seed=1)
    assert grown.content_hash not in {base, relabelled.content_hash}
    assert grown.row_count == len(labeled) + 1
    assert relabel_id in {r["label_version_id"] for r in service.read_rows(grown)}


def test_names_are_unique_and_empty_scopes_are_refused(labeled: list[Image]) -> None:
    _create("taken")
    with pytest.raises(ManifestExists, match="already exists"):
        _create("taken", seed=5)
    with pytest.raises(EmptyManifest, match="accepted label"):
        _create("nothing", task="no-such-task")
    with pytest.raises(EmptyManifest):
        _create("nowhere", query={"site": "mars"})


def test_query_and_batches_limit_the_scope(labeled: list[Image]) -> None:
    with session_scope() as s:
        for image in labeled[:5]:
            s.execute(
                update(Image).where(Image.id == image.id).values(attributes={"site": "lab-1"})
            )
        batch = Batch(purpose="active_learning", strategy="random")
        s.add(batch)
        s.flush()
        for position, image in enumerate(labeled[3:9]):
            s.add(BatchItem(batch_id=batch.id, image_id=image.id, item_key=f"k{position}"))
        batch_id = batch.id
    by_site = _create("lab-1", query={"site": "lab-1"})
    assert set(_rows(by_site.content_hash)) == {i.sha256 for i in labeled[:5]}
    by_batch = _create("batch", from_batches=[batch_id])
    assert set(_rows(by_batch.content_hash)) == {i.sha256 for i in labeled[3:9]}
    both = _create("both", from_batches=[batch_id], query={"site": "lab-1"})
    assert set(_rows(both.content_hash)) == {i.sha256 for i in labeled[3:5]}
    assert both.selection["query"] == {"site": "lab-1"}
    assert both.selection["from_batches"] == [batch_id]


# --- immutability ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE manifests SET name = 'renamed'",
        "DELETE FROM manifests",
        "UPDATE manifest_rows SET split = 'train'",
        "DELETE FROM manifest_rows",
    ],
)
def test_the_database_refuses_to_change_manifests(labeled: list[Image], statement: str) -> None:
    manifest = _create("frozen")
    before = _rows(manifest.content_hash)
    with pytest.raises(DBAPIError, match="append-only"), get_engine().begin() as conn:
        conn.execute(text(statement))
    assert _rows(manifest.content_hash) == before
    with session_scope() as s:
        assert s.scalar(select(models.Manifest.name)) == "frozen"


# --- splits -----------------------------------------------------------------------------------


def _splits_per_group(manifest_id: str) -> dict[int, set[str]]:
    groups: dict[int, set[str]] = defaultdict(set)
    for row in _rows(manifest_id).values():
        if row["group"] is not None:
            groups[row["group"]].add(row["split"])
    return groups


def test_duplicate_groups_never_straddle_splits(labeled: list[Image]) -> None:
    ids = [i.id for i in labeled]
    groups = [_group(*ids[0:4]), _group(*ids[4:7]), _group(*ids[7:9])]
    for seed in range(6):
        manifest = _create(f"seed-{seed}", seed=seed, splits=HALVES)
        per_group = _splits_per_group(manifest.content_hash)
        assert sorted(per_group) == sorted(groups)
        assert all(len(splits) == 1 for splits in per_group.values()), per_group


def test_merged_groups_are_followed_to_the_surviving_group(labeled: list[Image]) -> None:
    ids = [i.id for i in labeled]
    survivor, absorbed = _group(*ids[0:3]), _group(*ids[3:6])
    with session_scope() as s:
        s.execute(update(DupGroup).where(DupGroup.id == absorbed).values(merged_into_id=survivor))
    for seed in range(4):
        per_group = _splits_per_group(_create(f"m{seed}", seed=seed, splits=HALVES).content_hash)
        assert list(per_group) == [survivor]
        assert len(per_group[survivor]) == 1


group_maps = st.dictionaries(
    st.text("0123456789abcdef", min_size=64, max_size=64),
    st.one_of(st.none(), st.integers(1, 8)),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(group_maps, st.integers(0, 2**31), st.data())
def test_property_groups_stay_whole_and_parent_splits_hold(
    groups: dict[str, int | None], seed: int, data: st.DataObject
) -> None:
    keys = {sha: group_key(sha, g) for sha, g in groups.items()}
    plan = plan_splits(keys, seed, "train=0.6,val=0.2,test=0.2")
    per_key: dict[str, set[str]] = defaultdict(set)
    for sha, split in plan.splits.items():
        per_key[keys[sha]].add(split)
    assert all(len(s) == 1 for s in per_key.values())
    assert plan.straddling == []
    # A next generation: some images were in the parent, others are new, and groups grew.
    parent = {sha: plan.splits[sha] for sha in data.draw(st.sets(st.sampled_from(sorted(keys))))}
    parent_groups: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for sha, split in parent.items():
        parent_groups[keys[sha]][split] += 1
    child = plan_splits(
        keys,
        seed + 1,
        "train=0.6,val=0.2,test=0.2",
        parent_split=parent,
        parent_groups=parent_groups,
    )
    assert all(child.splits[sha] == split for sha, split in parent.items())
    for sha, key in keys.items():
        if key in parent_groups:
            assert child.splits[sha] in parent_groups[key]
    assert child.straddling == []
    assert child.inherited + child.joined + child.drawn == len(keys)


def test_parent_generation_keeps_splits_and_near_duplicates_join_their_group(
    labeled: list[Image], photos: Path
) -> None:
    ids = {i.sha256: i.id for i in labeled}
    grouped = _group(*[i.id for i in labeled[:3]])
    gen1 = _create("gen1", seed=7, splits=HALVES)
    first = _rows(gen1.content_hash)
    test_image = next(
        i
        for i in labeled[3:]
        if first[i.sha256]["split"] == "test" and first[i.sha256]["group"] is None
    )
    group_split = first[labeled[0].sha256]["split"]
    # New images: a near-duplicate of an ungrouped test image (dedup then forms a new group
    # around both), a new member of the existing group, and an unrelated photo.
    near_test = _near_duplicate(test_image.uri, photos / "near-test.jpg")
    near_group = _near_duplicate(labeled[0].uri, photos / "near-group.jpg")
    _ingest(near_test, near_group)
    new = {i.uri: i for i in _images() if i.sha256 not in ids}
    new_group = _group(test_image.id, new[str(near_test)].id)
    _join(grouped, new[str(near_group)].id)
    for image in new.values():
        _accept(image.id, "hat")
    # A seed under which, without a parent, both groups would be drawn into the other split:
    # only inheritance can put them where the parent had them.
    keys = [group_key(test_image.sha256, new_group), group_key("", grouped)]
    other = {"train": "test", "test": "train"}
    seed = next(
        s
        for s in range(1000)
        if assign_splits(keys, s, HALVES) == {keys[0]: "train", keys[1]: other[group_split]}
    )
    orphan = _create("no-parent", seed=seed, splits=HALVES)
    assert _rows(orphan.content_hash)[test_image.sha256]["split"] == "train"
    gen2 = _create("gen2", seed=seed, splits=HALVES, parent="gen1")
    second = _rows(gen2.content_hash)
    assert {sha: second[sha]["split"] for sha in first} == {
        sha: row["split"] for sha, row in first.items()
    }
    assert second[new[str(near_test)].sha256]["split"] == "test"
    assert second[new[str(near_group)].sha256]["split"] == group_split
    assert gen2.selection["splits_inherited"] == len(first)
    assert gen2.selection["splits_joined"] == 2
    with session_scope() as s:
        diff = diff_manifests(s, "gen1", "gen2")
        assert service.manifest_out(s, gen2).parent == "gen1"
    assert not diff.leak
    assert diff.counts["added"] == 2


def test_groups_merged_after_the_parent_keep_their_members_splits(
    labeled: list[Image], photos: Path
) -> None:
    ids = [i.id for i in labeled]
    gen1 = _create("gen1", seed=3, splits=HALVES)
    first = _rows(gen1.content_hash)
    train = next(i for i in labeled if first[i.sha256]["split"] == "train")
    test = next(i for i in labeled if first[i.sha256]["split"] == "test")
    near = _near_duplicate(test.uri, photos / "bridge.jpg")
    _ingest(near)
    (bridge,) = [i for i in _images() if i.id not in ids]
    _accept(bridge.id, "hat")
    _group(train.id, test.id, bridge.id)
    gen2 = _create("gen2", seed=3, splits=HALVES, parent="gen1")
    second = _rows(gen2.content_hash)
    assert second[train.sha256]["split"] == "train"
    assert second[test.sha256]["split"] == "test"
    assert second[bridge.sha256]["split"] == "test"  # a tie goes to the evaluation side
    with session_scope() as s:
        document, _markdown = service.read_datasheet(service.get_manifest(s, "gen2"))
        diff = diff_manifests(s, "gen1", "gen2")
    assert document["composition"]["duplicates"]["groups_straddling_splits"] == 1
    assert any("straddle" in note for note in document["limitations"])
    assert diff.leak
    assert diff.counts["split_moves"] == 0
    assert diff.counts["straddling_groups"] == 1


def test_parent_split_names_must_be_kept(labeled: list[Image]) -> None:
    _create("gen1", splits="train=0.5,holdout=0.5")
    with pytest.raises(ManifestError, match="holdout"):
        _create("gen2", splits=HALVES, parent="gen1")


# --- verify -----------------------------------------------------------------------------------


def _verify(ref: str, **options: Any) -> Any:
    with session_scope() as s:
        return verify_manifest(s, ref, **options)


def test_verify_passes_then_reports_a_tampered_body(labeled: list[Image]) -> None:
    manifest = _create("v1")
    assert _verify("v1").ok
    assert _verify(manifest.content_hash, body_only=True).ok
    body = Path(service.body_location(manifest))
    data = body.read_bytes()
    body.write_bytes(data.replace(b'"split":"train"', b'"split":"test"', 1))
    for body_only in (True, False):
        report = _verify("v1", body_only=body_only)
        assert not report.ok
        assert any("content hash" in p for p in report.problems), report.problems
    with pytest.raises(ManifestTampered):
        service.read_rows(manifest)


def test_verify_reports_missing_and_changed_images(labeled: list[Image]) -> None:
    manifest = _create("v2")
    store = get_store()
    missing, changed = labeled[0], labeled[1]
    Path(store.local_path(missing.blob_key or "") or "").unlink()
    changed_path = Path(store.local_path(changed.blob_key or "") or "")
    changed_path.chmod(0o644)
    changed_path.write_bytes(changed_path.read_bytes() + b"\0")
    seen: list[tuple[int, int]] = []
    report = _verify("v2", progress=lambda done, total, _m: seen.append((done, total)))
    assert not report.ok
    assert [p.sha256 for p in report.missing] == [missing.sha256]
    assert [p.sha256 for p in report.changed] == [changed.sha256]
    assert report.changed[0].actual_sha256 not in (None, changed.sha256)
    assert report.images_checked == manifest.row_count
    assert seen[-1] == (manifest.row_count, manifest.row_count)
    assert _verify("v2", body_only=True).ok


def test_verify_checks_images_referenced_at_their_original_location(
    catalog: str, photos: Path
) -> None:
    _ingest(photos, copy=False)
    images = _images()
    for image in images:
        _accept(image.id, "hat")
    manifest = _create("by-uri")
    rows = service.read_rows(manifest)
    assert all(row["blob_key"] == "" for row in rows)
    Path(images[2].uri).write_bytes(b"not the same picture")
    report = _verify("by-uri")
    assert [p.sha256 for p in report.changed] == [images[2].sha256]
    assert report.changed[0].location == images[2].uri


# --- diff and datasheet ---------------------------------------------------------------------


def test_diff_reports_changes_and_flags_split_moves_as_leaks(labeled: list[Image]) -> None:
    _create("before", seed=1, splits=HALVES)
    _accept(labeled[0].id, "scarf")
    with session_scope() as s:
        s.execute(update(Image).where(Image.id == labeled[1].id).values(status="quarantined"))
    _create("after", parent="before", seed=1, splits=HALVES)
    _create("reshuffled", seed=2, splits=HALVES)
    with session_scope() as s:
        diff = diff_manifests(s, "before", "after")
        leak = diff_manifests(s, "before", "reshuffled")
    assert diff.removed == [labeled[1].sha256]
    assert diff.added == []
    assert [r.sha256 for r in diff.relabelled] == [labeled[0].sha256]
    assert diff.relabelled[0].after == {"class": "scarf"}
    assert not diff.leak
    assert diff.split_moves == []
    after = diff.class_counts["b"]
    assert sum(n for per_split in after.values() for n in per_split.values()) == len(labeled) - 1
    assert sum(per_split.get("scarf", 0) for per_split in after.values()) == 1
    assert all("scarf" not in per_split for per_split in diff.class_counts["a"].values())
    assert leak.leak
    assert leak.counts["split_moves"] == len(leak.split_moves) > 0
    assert all(m.before != m.after for m in leak.split_moves)


def test_datasheet_sections_and_counts(
    labeled: list[Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasheet, "MAX_SLICE_VALUES", 4)
    with session_scope() as s:
        vendor = Vendor(name="acme")
        s.add(vendor)
        s.flush()
        annotators = [Annotator(name=f"ann-{i}", vendor_id=vendor.id) for i in range(2)]
        guideline = Guideline(
            name="clothing",
            version=2,
            sha256="a" * 64,
            kind="classification",
            classes=[*CLASSES, "scarf"],
            body="",
            label_config="",
        )
        batch = Batch(purpose="active_learning", strategy="random")
        s.add_all([*annotators, guideline, batch])
        s.flush()
        audit = Audit(batch_id=batch.id, gate=0.95, pass_rate=0.97, decision="accepted", metrics={})
        s.add(audit)
        s.flush()
        refs = ([a.id for a in annotators], guideline.id, batch.id, audit.id)
        for i, image in enumerate(labeled):
            s.execute(
                update(Image)
                .where(Image.id == image.id)
                .values(attributes={"site": f"site-{i % 2}", "serial": image.sha256})
            )
    annotator_ids, guideline_id, batch_id, audit_id = refs
    for i, image in enumerate(labeled[:6]):
        _accept(
            image.id,
            "scarf",
            annotator_id=annotator_ids[i % 2],
            guideline_id=guideline_id,
            batch_id=batch_id,
        )
    _group(labeled[6].id, labeled[7].id, labeled[8].id)
    _group(labeled[9].id, labeled[10].id)
    manifest = _create("sheet", stratify_by="site", seed=4)
    with session_scope() as s:
        document, markdown = service.read_datasheet(service.get_manifest(s, "sheet"))
    rows = service.read_rows(manifest)
    for section in (
        "Motivation",
        "Composition",
        "Collection process",
        "Preprocessing",
        "Labeling",
        "Splits",
        "Uses",
        "Distribution",
        "Maintenance",
        "Known limitations",
        "Personal data",
    ):
        assert f"## {section}" in markdown or f"### {section}" in markdown, section
    comp = document["composition"]
    assert comp["rows"] == len(rows) == len(labeled)
    assert comp["splits"] == manifest.split_counts
    expected: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        expected[row["split"]][row["label"]["class"]] += 1
    assert comp["classes"] == {k: dict(v) for k, v in expected.items()}
    assert (
        comp["classes"]["train"].get("scarf", 0)
        + sum(comp["classes"].get(s, {}).get("scarf", 0) for s in ("val", "test"))
        == 6
    )
    site_total = sum(
        n
        for per_split in comp["slices"]["site"].values()
        for per_class in per_split.values()
        for n in per_class.values()
    )
    assert site_total == len(rows)
    assert "serial" in comp["slices_left_out"]
    assert comp["duplicates"] == {
        "groups": 2,
        "groups_with_several_images": 2,
        "largest_group": 3,
        "images_in_groups": 5,
        "groups_straddling_splits": 0,
    }
    pre = document["preprocessing"]
    assert pre["quarantined"] == 1
    assert len(pre["quarantine_reasons"]) == 1
    assert pre["no_accepted_label"] == 0
    assert pre["pii"]["exif_read"] == [
        "Make",
        "Model",
        "DateTime",
        "DateTimeOriginal",
        "Orientation",
    ]
    assert any("GPS" in item for item in pre["pii"]["never_stored"])
    lab = document["labeling"]
    assert lab["vendors"] == {"acme": 6, "(no vendor recorded)": len(rows) - 6}
    assert lab["annotators"] == 2
    assert lab["guidelines"] == {"clothing:2": 6, "(none recorded)": len(rows) - 6}
    assert lab["audits"] == [
        {
            "id": audit_id,
            "batch_id": batch_id,
            "gate": 0.95,
            "pass_rate": 0.97,
            "decision": "accepted",
        }
    ]
    assert "0.97" in markdown
    assert "acme" in markdown
    balance = document["splits"]["balance"]
    assert [b["stratum"] for b in balance] == ["site-0", "site-1"]
    assert sum(b["groups"] for b in balance) == len(rows) - 3
    assert any("in expectation" in note for note in document["limitations"])
    stored = json.loads(get_store().get(manifest.datasheet_key or ""))
    assert stored == document


# --- jobs, loader, export ---------------------------------------------------------------------


def test_manifest_job_runs_in_process(labeled: list[Image]) -> None:
    from dataops.jobs import dispatch

    job = dispatch.submit(
        "manifest", {"name": "by-job", "seed": 3, "splits": HALVES}, actor="cli:tester"
    )
    assert job.status == "succeeded", job.error
    assert job.result is not None
    assert job.result["rows"] == len(labeled)
    assert job.result["id"] == _create("direct", seed=3, splits=HALVES).content_hash
    assert job.progress_done == job.progress_total == 5


def to_tensor(image: PILImage.Image) -> Any:
    import numpy as np
    import torch

    small = image.resize((32, 32))
    return torch.from_numpy(np.asarray(small, dtype=np.float32).transpose(2, 0, 1) / 255.0)


def test_torch_dataset_with_worker_processes(labeled: list[Image]) -> None:
    import torch
    from torch.utils.data import DataLoader

    from dataops.manifests import TorchDataset

    manifest = _create("loader", splits=HALVES, seed=2)
    dataset = TorchDataset("loader", "train", transform=to_tensor)
    assert isinstance(dataset, torch.utils.data.Dataset)
    assert dataset.manifest_id == manifest.content_hash
    assert len(dataset) == manifest.split_counts["train"]
    loader = DataLoader(dataset, batch_size=4, num_workers=2)
    images, targets = [], []
    for batch, target in loader:
        images.append(batch)
        targets.extend(target.tolist())
    assert torch.cat(images).shape == (len(dataset), 3, 32, 32)
    assert targets == [dataset.class_to_idx[row["label"]["class"]] for row in dataset.rows]
    test = TorchDataset(manifest.content_hash, "test", transform=to_tensor)
    assert test.classes == dataset.classes
    with pytest.raises(Exception, match="no split 'val'"):
        TorchDataset("loader", "val")


def test_torch_dataset_refuses_changed_images(labeled: list[Image]) -> None:
    from dataops.manifests import TorchDataset
    from dataops.manifests.loader import BlobIntegrityError

    _create("loader")
    dataset = TorchDataset("loader", "train")
    path = Path(get_store().local_path(dataset.rows[0]["blob_key"]) or "")
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(BlobIntegrityError, match=dataset.rows[0]["sha256"]):
        dataset[0]


def test_importing_manifests_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, dataops.manifests, dataops.manifests.service, dataops.manifests.create, "
        "dataops.cli.manifest; "
        "print('torch' in sys.modules, 'pyarrow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_export_folder_and_coco(labeled: list[Image], tmp_path: Path) -> None:
    manifest = _create("exp")
    with session_scope() as s:
        result = exporting.export_manifest(s, "exp", tmp_path / "folder", fmt="folder")
    assert result["rows"] == manifest.row_count
    assert result["linked"] + result["copied"] == manifest.row_count
    files = list((tmp_path / "folder").rglob("*.jpg"))
    assert len(files) == manifest.row_count
    assert {f.parent.name for f in files} <= set(CLASSES)
    with session_scope() as s, pytest.raises(Exception, match="use format folder"):
        exporting.export_manifest(s, "exp", tmp_path / "x", fmt="voc")
