"""Model registry and batch scoring on real ingested images, over SQLite and PostgreSQL.

The model's probabilities are a known function of each image's brightness
(tests/support/brightness_model.py), so stored scores can be checked exactly.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from dataops.catalog.ingest import ingest
from dataops.catalog.models import Image
from dataops.db import session_scope
from dataops.jobs import dispatch
from dataops.jobs.models import FAILED, SUCCEEDED
from dataops.scoring import register as registry
from dataops.scoring import service
from dataops.scoring.embeddings import EmbeddingStore
from dataops.scoring.errors import InvalidModel, ModelConflict, ModelNotFound
from dataops.scoring.models import ModelVersion, Prediction
from dataops.storage import get_store
from tests.support.api import MakeUser, bearer
from tests.support.brightness_model import CLASSES, SPEC, expected_probs, export, write_gray
from tests.support.cli import run_cli, run_json

LEVELS = (20, 45, 70, 100, 120, 131, 150, 170, 200, 230, 250)


@pytest.fixture
def grays(tmp_path: Path, catalog: str) -> dict[int, int]:
    """Gray level -> image id of one uniform gray PNG per level, ingested."""
    folder = tmp_path / "grays"
    paths = {g: write_gray(folder / f"g{g:03d}.png", g) for g in LEVELS}
    ingest([str(folder)], transaction=session_scope)
    with session_scope() as session:
        by_uri = {uri: image_id for uri, image_id in session.execute(select(Image.uri, Image.id))}
    return {g: by_uri[str(p.resolve())] for g, p in paths.items()}


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    return export(tmp_path / "brightness.pt")


def register(path: Path, name: str = "bright", **kwargs: Any) -> tuple[ModelVersion, bool]:
    with session_scope() as session:
        return registry.register_model(
            session, path, name=name, classes=kwargs.pop("classes", CLASSES), actor="test", **kwargs
        )


def score(model: str = "bright", **params: Any) -> dict[str, Any]:
    job = dispatch.submit("score", {"model": model, **params}, actor="test")
    assert job.status == SUCCEEDED, job.error
    assert job.result is not None
    return job.result


def predictions(model_version_id: int) -> list[Prediction]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(Prediction)
                .where(Prediction.model_version_id == model_version_id)
                .order_by(Prediction.image_id)
            )
        )


def test_register_is_idempotent_and_versions_new_bytes(catalog: str, tmp_path: Path) -> None:
    first, created = register(export(tmp_path / "a.pt"))
    assert created
    assert (first.version, first.is_current, first.has_embedding) == (1, True, True)
    copy = tmp_path / "elsewhere.pt"
    shutil.copy(tmp_path / "a.pt", copy)
    again, created_again = register(copy)
    assert not created_again
    assert again.id == first.id

    second, _ = register(export(tmp_path / "b.pt", embedding=False))
    assert (second.version, second.has_embedding) == (2, False)
    with session_scope() as session:
        assert service.resolve_model(session, "bright").id == second.id
        assert service.resolve_model(session, "bright:1").id == first.id
        assert service.resolve_model(session, "bright:v2").id == second.id

    third, _ = register(
        export(tmp_path / "c.pt", with_spec=False), input_spec=SPEC, make_current=False
    )
    with session_scope() as session:
        assert service.resolve_model(session, "bright").id == second.id
        registry.set_current(session, "bright:3", actor="test")
    with session_scope() as session:
        current = session.scalars(select(ModelVersion.version).where(ModelVersion.is_current)).all()
        assert current == [3]
        stored = get_store().get(third.blob_key)
        assert stored == (tmp_path / "c.pt").read_bytes()


def test_register_refuses_what_cannot_be_scored(catalog: str, tmp_path: Path) -> None:
    good = export(tmp_path / "m.pt")
    with pytest.raises(
        InvalidModel, match=r"expected one output per class \(2: dark, light\)"
    ) as err:
        register(good, classes=["dark", "light"])
    assert "3" not in str(err.value).replace(str(tmp_path), "")  # the model's count is not echoed
    with pytest.raises(InvalidModel, match="unique"):
        register(good, classes=["dark", "dark", "other"])
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(InvalidModel, match="not a TorchScript file"):
        register(junk)
    with pytest.raises(InvalidModel, match="no input spec"):
        register(export(tmp_path / "bare.pt", with_spec=False))
    with pytest.raises(InvalidModel, match="model name"):
        register(good, name="no spaces allowed")
    register(good)
    with pytest.raises(ModelConflict, match="already bright:1"):
        register(good, classes=["a", "b", "c"])
    with session_scope() as session, pytest.raises(ModelNotFound):
        service.resolve_model(session, "bright:9")


def test_scoring_stores_known_outputs(grays: dict[int, int], model_file: Path) -> None:
    mv, _ = register(model_file)
    result = score(batch_size=4)
    assert (result["scored"], result["failed"], result["embeddings"]) == (
        len(LEVELS),
        0,
        len(LEVELS),
    )
    rows = {p.image_id: p for p in predictions(mv.id)}
    assert set(rows) == set(grays.values())
    for gray, image_id in grays.items():
        want = expected_probs(gray)
        row = rows[image_id]
        np.testing.assert_allclose(row.probs, want, atol=1e-6)
        top2 = np.sort(want)[-2:]
        assert row.predicted_class == CLASSES[int(np.argmax(want))]
        assert row.predicted_score == pytest.approx(want.max(), abs=1e-6)
        assert row.least_confidence == pytest.approx(1 - want.max(), abs=1e-6)
        assert row.margin == pytest.approx(1 - (top2[1] - top2[0]), abs=1e-6)
        assert row.entropy == pytest.approx(-(want * np.log(want)).sum(), abs=1e-6)

    with session_scope() as session:
        store = EmbeddingStore.of(session.get(ModelVersion, mv.id))
    ids, vectors = store.read()
    assert ids.tolist() == sorted(grays.values())
    brightness = {image_id: np.float32(g) / np.float32(255) for g, image_id in grays.items()}
    np.testing.assert_allclose(vectors[:, 0], [brightness[i] for i in ids], atol=1e-6)
    index = store.index()
    assert sorted(index.ids.tolist()) == ids.tolist()


def test_interrupted_scoring_resumes_without_duplicates_or_recomputing(
    grays: dict[int, int], model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataops.scoring import inference

    mv, _ = register(model_file)
    real = inference.score_images

    def dies_after_two_batches(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for n, batch in enumerate(real(*args, **kwargs)):
            if n == 2:
                raise RuntimeError("power cut")
            yield batch

    monkeypatch.setattr(inference, "score_images", dies_after_two_batches)
    with pytest.raises(RuntimeError, match="power cut"):
        dispatch.submit("score", {"model": "bright", "batch_size": 3}, actor="test")
    first = {p.image_id: (p.id, p.created_at) for p in predictions(mv.id)}
    assert len(first) == 6

    monkeypatch.setattr(inference, "score_images", real)
    result = score(batch_size=3)
    assert (result["scored"], result["already_scored"]) == (len(LEVELS) - 6, 6)
    rows = predictions(mv.id)
    assert len(rows) == len(LEVELS)
    with session_scope() as session:
        distinct = session.scalar(
            select(func.count(func.distinct(Prediction.image_id))).where(
                Prediction.model_version_id == mv.id
            )
        )
    assert distinct == len(LEVELS)
    assert {p.image_id: (p.id, p.created_at) for p in rows if p.image_id in first} == first
    with session_scope() as session:
        ids, _ = EmbeddingStore.of(session.get(ModelVersion, mv.id)).read()
    assert ids.tolist() == sorted(grays.values())

    def must_not_run(*args: Any, **kwargs: Any) -> Iterator[Any]:
        raise AssertionError("nothing left to score, so no image may be decoded again")

    monkeypatch.setattr(inference, "score_images", must_not_run)
    again = score()
    assert (again["scored"], again["already_scored"]) == (0, len(LEVELS))
    assert len(predictions(mv.id)) == len(LEVELS)


def test_lost_embeddings_are_rederived_from_the_catalog(
    grays: dict[int, int], model_file: Path
) -> None:
    mv, _ = register(model_file)
    score()
    before = [(p.id, p.probs) for p in predictions(mv.id)]
    with session_scope() as session:
        store = EmbeddingStore.of(session.get(ModelVersion, mv.id))
    store.base_path.write_bytes(b"torn write")
    result = score()
    assert (result["scored"], result["embeddings_rederived"]) == (0, len(LEVELS))
    assert store.read()[0].tolist() == sorted(grays.values())
    assert [(p.id, p.probs) for p in predictions(mv.id)] == before


def test_rescore_replaces_instead_of_duplicating(grays: dict[int, int], model_file: Path) -> None:
    mv, _ = register(model_file)
    score()
    result = score(rescore=True)
    assert result["scored"] == len(LEVELS)
    assert len(predictions(mv.id)) == len(LEVELS)


def test_unreadable_image_is_quarantined_and_the_run_goes_on(
    grays: dict[int, int], model_file: Path
) -> None:
    mv, _ = register(model_file)
    with session_scope() as session:
        victim = session.get(Image, grays[131])
        assert victim is not None
        Path(victim.uri).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = score(batch_size=4)
    assert (result["scored"], result["failed"], result["quarantined"]) == (len(LEVELS) - 1, 1, 1)
    with session_scope() as session:
        image = session.get(Image, grays[131])
        assert image is not None
        assert image.status == "quarantined"
        assert image.quarantine_reason is not None
        assert "unreadable when scored by bright:1" in image.quarantine_reason
    assert grays[131] not in {p.image_id for p in predictions(mv.id)}


def test_failed_job_is_recorded(grays: dict[int, int]) -> None:
    with pytest.raises(ModelNotFound):
        dispatch.submit("score", {"model": "missing"}, actor="test")
    from dataops.jobs.models import Job

    with session_scope() as session:
        job = session.scalars(select(Job).where(Job.kind == "score")).one()
        assert job.status == FAILED
        assert "no model 'missing'" in (job.error or "")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_cli_register_list_current_and_score(grays: dict[int, int], tmp_path: Path) -> None:
    path = export(tmp_path / "m.pt")
    registered = run_json(
        "model", "register", str(path), "--name", "bright", "--classes", "dark,light,other"
    )
    assert (registered["ref"], registered["created"], registered["has_embedding"]) == (
        "bright:1",
        True,
        True,
    )
    bare = export(tmp_path / "bare.pt", with_spec=False)
    second = run_json(
        "model",
        "register",
        str(bare),
        "--name",
        "bright",
        "--classes",
        "dark,light,other",
        "--input-size",
        "8",
        "--mean",
        "0",
        "--std",
        "1",
        "--no-current",
    )
    assert (second["ref"], second["is_current"], second["input_spec"]["channels"]) == (
        "bright:2",
        False,
        1,
    )

    scored = run_json("score", "--model", "bright", "--batch-size", "5")
    assert (scored["model"], scored["scored"], scored["failed"]) == ("bright:1", len(LEVELS), 0)
    assert run_json("score", "--model", "bright:1")["scored"] == 0

    listed = {m["ref"]: m for m in run_json("model", "list")["models"]}
    assert listed["bright:1"]["predictions"] == len(LEVELS)
    assert listed["bright:2"]["predictions"] == 0
    assert run_json("model", "current", "bright")["ref"] == "bright:2"
    assert [m["ref"] for m in run_json("model", "list")["models"] if m["is_current"]] == [
        "bright:2"
    ]

    wrong = run_cli(
        "model", "register", str(path), "--name", "x", "--classes", "a,b", "--json", check=False
    )
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        f"error: {path}: expected one output per class (2: a, b); the model's logits have "
        "another number of columns"
    ]
    missing = run_cli("score", "--model", "nope", "--json", check=False)
    assert missing.returncode == 2
    assert "no model 'nope'" in missing.stderr


def test_http_list_models_and_start_scoring(
    grays: dict[int, int], model_file: Path, api: TestClient, make_user: MakeUser
) -> None:
    register(model_file)
    scientist = bearer(make_user("scientist"))
    listed = api.get("/v1/models", headers=scientist)
    assert listed.status_code == 200
    assert [m["ref"] for m in listed.json()["models"]] == ["bright:1"]
    started = api.post("/v1/models/bright/score", json={"batch_size": 4}, headers=scientist)
    assert started.status_code == 202, started.text
    job = api.get(started.json()["status_url"], headers=scientist).json()
    assert (job["status"], job["result"]["scored"]) == ("succeeded", len(LEVELS))
    assert api.get("/v1/models", headers=scientist).json()["models"][0]["predictions"] == len(
        LEVELS
    )
    assert api.post("/v1/models/nope/score", headers=scientist).status_code == 404
    auditor = bearer(make_user("auditor"))
    assert api.post("/v1/models/bright/score", headers=auditor).status_code == 403
