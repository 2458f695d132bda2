"""Batch selection on real ingested images, over SQLite and PostgreSQL.

Every image is a uniform gray PNG scored by a model whose outputs are a known function of
brightness (tests/support/brightness_model.py): the closer to mid-gray (127.5), the more
uncertain; the brighter, the more "light". So each strategy's picks can be stated exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from dataops.catalog.ingest import ingest
from dataops.catalog.models import Image
from dataops.db import session_scope
from dataops.dedup.models import DupGroup
from dataops.jobs import dispatch
from dataops.jobs.context import JobContext
from dataops.labeling.errors import QueueNotFound
from dataops.labeling.models import LabelVersion, Queue
from dataops.manifests.models import Manifest, ManifestRow
from dataops.scoring.embeddings import EmbeddingStore
from dataops.scoring.errors import ModelNotFound
from dataops.scoring.models import ModelVersion
from dataops.scoring.register import register_model
from dataops.selection import run, service
from dataops.selection.errors import InvalidSelection, NothingEligible, NotScored
from dataops.selection.jobs import run_select_job
from dataops.selection.models import Batch, BatchItem, ImageClaim
from dataops.selection.schemas import select_request
from tests.support.api import MakeUser, bearer, make_queue
from tests.support.brightness_model import CLASSES, export, write_gray
from tests.support.cli import run_cli, run_json
from tests.support.snapshot import Snapshots

LEVELS = (20, 45, 70, 100, 120, 131, 150, 170, 200, 230, 250)
# Most uncertain first once duplicate groups are collapsed: |gray - 127.5| ascending.
BY_UNCERTAINTY = ["g131", "g120x", "g150", "g100", "g170", "g070", "g200", "g230", "g020", "g250"]

Ids = dict[str, int]


def _ingest(folder: Path, sites: dict[str, str] | None = None) -> Ids:
    csv = None
    if sites:
        csv = folder.parent / "sites.csv"
        csv.write_text("file,site\n" + "".join(f"{n}.png,{s}\n" for n, s in sites.items()))
    ingest([str(folder)], attributes_csv=str(csv) if csv else None, transaction=session_scope)
    with session_scope() as session:
        return {
            Path(uri).stem: image_id
            for uri, image_id in session.execute(select(Image.uri, Image.id))
        }


def _register_and_score(tmp_path: Path) -> None:
    path = export(tmp_path / "brightness.pt")
    with session_scope() as session:
        register_model(session, path, name="bright", classes=CLASSES, actor="test")
    job = dispatch.submit("score", {"model": "bright"}, actor="test")
    assert job.status == "succeeded", job.error


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snapshots]:
    """`world` is built once per backend; each test that takes it starts from its own copy."""
    snapshots = Snapshots(tmp_path_factory.mktemp("selection-worlds"))
    yield snapshots
    snapshots.drop()


@pytest.fixture
def catalog(
    catalog: str, worlds: Snapshots, isolated_env: Path, request: pytest.FixtureRequest
) -> str:
    if "world" in request.fixturenames:
        worlds.restore(catalog, isolated_env)
    return catalog


@pytest.fixture
def world(catalog: str, worlds: Snapshots, isolated_env: Path) -> Ids:
    """Eleven gray levels, a same-brightness copy of g120, one corrupt file; scored; two groups.

    Groups: {g120, g120x} with g120x as representative, and {g045, g200} with g045.
    Sites: a below mid-gray, b above.
    """
    taken = worlds.get(catalog)
    if taken is not None:
        return dict(taken.context)
    tmp_path = worlds.folder / f"{catalog.split(':')[0]}-files"  # outlives this test
    folder = tmp_path / "grays"
    for g in LEVELS:
        write_gray(folder / f"g{g:03d}.png", g)
    write_gray(folder / "g120x.png", 120, side=9)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    names = [f"g{g:03d}" for g in LEVELS] + ["g120x"]
    ids = _ingest(folder, {n: "a" if int(n[1:4]) < 128 else "b" for n in names})
    _register_and_score(tmp_path)
    with session_scope() as session:
        assert session.get(Image, ids["broken"]).status == "quarantined"  # type: ignore[union-attr]
        group(session, [ids["g120"], ids["g120x"]], representative=ids["g120x"])
        group(session, [ids["g045"], ids["g200"]], representative=ids["g045"])
    worlds.take(catalog, isolated_env, ids)
    return dict(ids)


def group(session: Any, members: list[int], representative: int | None) -> int:
    dup = DupGroup(representative_id=representative, size=len(members), methods="phash")
    session.add(dup)
    session.flush()
    for image_id in members:
        image = session.get(Image, image_id)
        image.dup_group_id = dup.id
    session.flush()
    return dup.id


_labels = iter(range(1, 10**6))


def label(
    session: Any, image_id: int, cls: str, *, status: str = "accepted", task: str = "default"
) -> None:
    n = next(_labels)
    session.add(
        LabelVersion(
            image_id=image_id,
            task=task,
            payload={"class": cls},
            source="csv",
            source_id=f"row{n}",
            source_key=f"csv:row{n}:-",
            status=status,
        )
    )
    session.flush()


def choose(session: Any, **request: Any) -> Batch:
    return run.select_batch(session, select_request(request), actor="test")


def pick(ids: Ids, **request: Any) -> list[str]:
    """Names of the images a committed selection got, in pick order."""
    names = {v: k for k, v in ids.items()}
    request.setdefault("allow_partial", True)  # a whole ranking: more than is eligible
    with session_scope() as session:
        batch = choose(session, **request)
        out = service.batch_out(session, batch)
    return [names[item.image_id] for item in out.items]


def dry_pick(ids: Ids, **request: Any) -> list[str]:
    """Like `pick`, then rolled back: the catalog is left as it was."""
    names = {v: k for k, v in ids.items()}
    request.setdefault("allow_partial", True)
    with session_scope() as session:
        batch = choose(session, **request)
        items = [names[i.image_id] for i in service.batch_out(session, batch).items]
        session.rollback()
    return items


@pytest.mark.parametrize("strategy", ["least_confidence", "margin", "entropy"])
def test_uncertainty_strategies_take_the_most_uncertain(world: Ids, strategy: str) -> None:
    assert dry_pick(world, strategy=strategy, size=4) == BY_UNCERTAINTY[:4]


def test_hard_negatives_unlabeled_are_the_highest_scored_for_the_class(world: Ids) -> None:
    assert dry_pick(world, strategy="hard_negative", size=3, class_name="light") == [
        "g250",
        "g230",
        "g200",
    ]
    with session_scope() as session:
        label(session, world["g230"], "light")
        label(session, world["g200"], "dark", status="rejected")
    got = pick(world, strategy="hard_negative", size=3, class_name="light", mode="unlabeled")
    assert got == ["g250", "g200", "g170"]
    with session_scope() as session:
        batch = session.scalars(select(Batch)).one()
        assert (batch.purpose, batch.strategy) == ("hard_negative", "hard_negative")
        assert batch.params["class"] == "light"
        assert batch.params["mode"] == "unlabeled"
        scores = session.scalars(
            select(BatchItem.score)
            .where(BatchItem.batch_id == batch.id)
            .order_by(BatchItem.position)
        ).all()
        assert scores == sorted(scores, reverse=True)


def test_hard_negatives_labeled_are_accepted_labels_of_other_classes(world: Ids) -> None:
    with session_scope() as session:
        label(session, world["g230"], "dark")  # a label error the model disagrees with
        label(session, world["g170"], "other")
        label(session, world["g150"], "light")  # labeled as the class itself: not a negative
        label(session, world["g250"], "dark", status="submitted")  # not accepted yet
        label(session, world["g020"], "other", status="rejected")
    got = dry_pick(world, strategy="hard_negative", size=5, class_name="light", mode="labeled")
    assert got == ["g230", "g170"]
    with pytest.raises(NothingEligible, match="accepted 'x' label other than 'dark'"):
        dry_pick(
            world, strategy="hard_negative", size=5, class_name="dark", mode="labeled", task="x"
        )


def test_kcenter_fills_the_gaps_left_by_labeled_images(world: Ids) -> None:
    with session_scope() as session:
        label(session, world["g131"], "other")
    assert dry_pick(world, strategy="kcenter", size=2) == ["g250", "g020"]


def test_cluster_margin_and_random_are_deterministic_for_a_seed(world: Ids) -> None:
    first = dry_pick(world, strategy="cluster_margin", size=3, seed=3)
    assert len(set(first)) == 3
    assert first == dry_pick(world, strategy="cluster_margin", size=3, seed=3)
    randoms = {seed: dry_pick(world, strategy="random", size=5, seed=seed) for seed in (1, 2)}
    assert randoms[1] == dry_pick(world, strategy="random", size=5, seed=1)
    assert randoms[1] != randoms[2]


def test_stratified_shares_the_batch_between_attribute_values(world: Ids) -> None:
    got = dry_pick(world, strategy="margin", size=4, stratify_by="site")
    assert got == ["g120x", "g100", "g131", "g150"]
    plain = dry_pick(world, strategy="stratified", size=10, stratify_by="site", seed=5)
    # Random keeps each group's representative: g045 rather than g200.
    assert sorted(plain) == sorted({*BY_UNCERTAINTY, "g045"} - {"g200"})


def test_eligibility_excludes_quarantined_labeled_and_held_out_with_duplicates(
    world: Ids,
) -> None:
    with session_scope() as session:
        label(session, world["g070"], "dark")
        label(session, world["g045"], "dark")  # and so its duplicate g200 is taken care of
        label(session, world["g230"], "light", task="boxes")  # another task: still eligible
        label(session, world["g250"], "light", status="rejected")  # to be labeled again
        group(session, [world["g150"], world["g170"]], representative=world["g150"])
        content = "sha256:" + "cd" * 32
        session.add(
            Manifest(
                name="eval-v1",
                content_hash=content,
                seed=0,
                splits={"train": 0.8, "val": 0.1, "test": 0.1},
                selection={},
                row_count=3,
                split_counts={"train": 1, "val": 1, "test": 1},
                body_key="manifests/x/body.jsonl",
                parquet_key="manifests/x/body.parquet",
            )
        )
        for name, split in (("g131", "train"), ("g170", "val"), ("g100", "test")):
            image = session.get(Image, world[name])
            session.add(
                ManifestRow(
                    content_hash=content, sha256=image.sha256, image_id=image.id, split=split
                )
            )
    # Two tasks have labels now: the selection must name its own.
    got = dry_pick(world, strategy="random", size=100, seed=1, task="default")
    assert sorted(got) == ["g020", "g120x", "g131", "g230", "g250"]


def test_one_image_per_group_prefers_the_strategy_then_the_representative(world: Ids) -> None:
    everything = dry_pick(world, strategy="margin", size=100)
    assert everything == BY_UNCERTAINTY  # g200 beats its group's representative g045 on margin
    randoms = dry_pick(world, strategy="random", size=100)
    assert "g045" in randoms
    assert {"g120", "g200"}.isdisjoint(randoms)
    with session_scope() as session:
        dup = session.get(Image, world["g120"]).dup_group_id  # type: ignore[union-attr]
        session.get(DupGroup, dup).representative_id = None  # type: ignore[union-attr]
    tied = dry_pick(world, strategy="margin", size=2)
    lowest = min(world["g120"], world["g120x"])
    assert tied == ["g131", next(k for k, v in world.items() if v == lowest)]


def test_in_flight_images_are_not_handed_out_again(world: Ids) -> None:
    first = pick(world, strategy="margin", size=3)
    second = pick(world, strategy="margin", size=3)
    assert first == BY_UNCERTAINTY[:3]
    # g120 is as uncertain as g120x, but its duplicate is already in flight.
    assert second == BY_UNCERTAINTY[3:6]
    with session_scope() as session:
        batches = session.scalars(select(Batch).order_by(Batch.id)).all()
        claims = {c.image_id: c.batch_id for c in session.scalars(select(ImageClaim))}
        assert [b.size for b in batches] == [3, 3]
        assert sorted(claims.values()) == [batches[0].id] * 3 + [batches[1].id] * 3
        session.execute(delete(ImageClaim).where(ImageClaim.batch_id == batches[0].id))
    assert pick(world, strategy="margin", size=1) == ["g131"]


def test_batch_records_queue_model_seed_and_requester(world: Ids) -> None:
    queue_id = make_queue("acme", [])
    with session_scope() as session:
        queue = session.get(Queue, queue_id)
        queue.overlap, queue.gold = 0.2, 0.05  # type: ignore[union-attr]
        queue_name = queue.name  # type: ignore[union-attr]
    with session_scope() as session:
        batch = run.select_batch(
            session,
            select_request({"strategy": "entropy", "size": 2, "seed": 9, "queue": queue_name}),
            actor="user:alice",
        )
        out = service.batch_out(session, batch)
    assert (out.purpose, out.strategy, out.seed, out.model) == (
        "active_learning",
        "entropy",
        9,
        "bright:1",
    )
    assert (out.queue, out.overlap, out.gold, out.requested_by) == (
        queue_name,
        0.2,
        0.05,
        "user:alice",
    )
    assert out.params["requested"] == 2
    assert out.params["eligible"] == len(BY_UNCERTAINTY)
    assert [i.position for i in out.items] == [0, 1]
    with session_scope() as session:
        keys = session.scalars(select(BatchItem.item_key).where(BatchItem.batch_id == out.id)).all()
    assert sorted(keys) == sorted(f"b{out.id}-i{i.image_id}" for i in out.items)


def test_clear_errors(world: Ids, tmp_path: Path) -> None:
    with pytest.raises(InvalidSelection, match="size must be between 1 and 100000, got 0"):
        dry_pick(world, strategy="margin", size=0)
    with pytest.raises(InvalidSelection, match="unknown strategy"):
        dry_pick(world, strategy="smartest", size=1)
    with pytest.raises(ModelNotFound, match="no model 'other'"):
        dry_pick(world, strategy="margin", size=1, model="other")
    with pytest.raises(InvalidSelection, match="has no class 'cat'"):
        dry_pick(world, strategy="hard_negative", size=1, class_name="cat")
    with pytest.raises(InvalidSelection, match="needs class: one of dark, light, other"):
        dry_pick(world, strategy="hard_negative", size=1)
    with pytest.raises(InvalidSelection, match="only apply to strategy hard_negative"):
        dry_pick(world, strategy="margin", size=1, class_name="light")
    with pytest.raises(InvalidSelection, match="cold_start selects without predictions"):
        dry_pick(world, strategy="margin", size=1, purpose="cold_start")
    with pytest.raises(InvalidSelection, match="stratified needs stratify_by"):
        dry_pick(world, strategy="stratified", size=1)
    with pytest.raises(QueueNotFound):
        dry_pick(world, strategy="random", size=1, queue="nobody")

    write_gray(tmp_path / "late" / "g099.png", 99)
    ingest([str(tmp_path / "late")], transaction=session_scope)
    with pytest.raises(
        NotScored, match=r"1 of 13 eligible images have no prediction from bright:1"
    ):
        dry_pick(world, strategy="margin", size=1)
    with session_scope() as session:  # random needs no predictions
        assert choose(session, strategy="random", size=3).size == 3
        session.rollback()
    with session_scope() as session:
        assert session.scalars(select(Batch)).all() == []


def test_kcenter_needs_the_embeddings_of_every_candidate(world: Ids) -> None:
    with session_scope() as session:
        mv = session.scalars(select(ModelVersion)).one()
        store = EmbeddingStore.of(mv)
    store.base_path.unlink()
    store.index_path.unlink()
    with pytest.raises(NotScored, match="no stored embedding from bright:1"):
        dry_pick(world, strategy="kcenter", size=2)
    dispatch.submit("score", {"model": "bright"}, actor="test")
    assert len(dry_pick(world, strategy="kcenter", size=2)) == 2


def test_cold_start_without_a_model(tmp_path: Path, catalog: str) -> None:
    folder = tmp_path / "grays"
    for g in LEVELS:
        write_gray(folder / f"g{g:03d}.png", g)
    ids = _ingest(folder)
    with pytest.raises(ModelNotFound, match="no model is registered"):
        dry_pick(ids, strategy="margin", size=2)
    with session_scope() as session:
        batch = choose(session, strategy="kcenter", size=4)
        out = service.batch_out(session, batch)
    assert (out.purpose, out.model, out.params["space"], out.size) == (
        "cold_start",
        None,
        "phash",
        4,
    )
    assert len({i.image_id for i in out.items}) == 4
    assert len(pick(ids, strategy="random", size=100, purpose="cold_start")) == len(LEVELS) - 4


def test_a_redelivered_select_job_reuses_its_batch(world: Ids) -> None:
    job = dispatch.submit("select", {"strategy": "margin", "size": 2}, actor="test")
    assert job.status == "succeeded", job.error
    assert job.result is not None
    ctx = JobContext(job_id=job.id, params=dict(job.params), actor="test")
    again = run_select_job(ctx)
    assert again["id"] == job.result["id"]
    with session_scope() as session:
        assert len(session.scalars(select(Batch)).all()) == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_cli_select(world: Ids) -> None:
    names = {v: k for k, v in world.items()}
    out = run_json("select", "--strategy", "margin", "--size", "3", "--seed", "4")
    assert [names[i["image_id"]] for i in out["items"]] == BY_UNCERTAINTY[:3]
    assert (out["model"], out["purpose"], out["size"], out["status"]) == (
        "bright:1",
        "active_learning",
        3,
        "draft",
    )
    negatives = run_json(
        "select",
        "--strategy",
        "hard_negative",
        "--class",
        "light",
        "--mode",
        "unlabeled",
        "--size",
        "2",
    )
    assert [names[i["image_id"]] for i in negatives["items"]] == ["g250", "g230"]
    assert negatives["purpose"] == "hard_negative"
    wrong = run_cli(
        "select",
        "--strategy",
        "hard_negative",
        "--class",
        "cat",
        "--size",
        "2",
        "--json",
        check=False,
    )
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        "error: model bright:1 has no class 'cat'; its classes are dark, light, other"
    ]


def test_http_select_then_read_the_batch(world: Ids, api: TestClient, make_user: MakeUser) -> None:
    scientist = bearer(make_user("scientist"))
    names = {v: k for k, v in world.items()}
    accepted = api.post(
        "/v1/batches", json={"strategy": "margin", "size": 2, "seed": 1}, headers=scientist
    )
    assert accepted.status_code == 202, accepted.text
    job = api.get(accepted.json()["status_url"], headers=scientist).json()
    assert job["status"] == "succeeded", job
    batch = api.get(f"/v1/batches/{job['result']['id']}", headers=scientist)
    assert batch.status_code == 200
    body = batch.json()
    assert [names[i["image_id"]] for i in body["items"]] == BY_UNCERTAINTY[:2]
    assert (body["model"], body["requested_by"]) == ("bright:1", job["created_by"])

    wrong = api.post(
        "/v1/batches",
        json={"strategy": "hard_negative", "size": 2, "class": "cat"},
        headers=scientist,
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "invalid_selection"
    assert api.get("/v1/batches/999999", headers=scientist).status_code == 404
    vendor = bearer(make_user("vendor", vendor="acme"))
    refused = api.post("/v1/batches", json={"strategy": "random", "size": 1}, headers=vendor)
    assert refused.status_code == 403
