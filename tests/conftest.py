"""Shared fixtures: an isolated data dir per test, real PostgreSQL databases and Redis keyspaces."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.corpus import require_corpus
from tests.support.services import PG_ADMIN_URL, create_database, drop_database, redis_db

pytest_plugins = ["tests.support.labelstudio", "tests.support.api"]

_ENV_KEYS = [k for k in os.environ if k.startswith("DATAOPS_")]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own embedded data dir and no external services unless it asks."""
    from dataops.config import reset_settings
    from dataops.db import dispose_engines
    from dataops.storage import get_store

    for key in _ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("DATAOPS_DATA_DIR", str(data_dir))
    monkeypatch.delenv("DATAOPS_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATAOPS_BROKER_URL", raising=False)
    reset_settings()
    get_store.cache_clear()
    yield data_dir
    dispose_engines()
    reset_settings()
    get_store.cache_clear()


@pytest.fixture
def corpus() -> Path:
    try:
        return require_corpus()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    name = f"dataops_t_{uuid.uuid4().hex[:12]}"
    url = create_database(name)
    try:
        yield url
    finally:
        from dataops.db import dispose_engines

        dispose_engines()
        drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, isolated_env: Path) -> Iterator[str]:
    """Parametrises a test over the embedded SQLite catalog and a real PostgreSQL one."""
    if request.param == "sqlite":
        yield f"sqlite:///{isolated_env / 'catalog.db'}"
        return
    yield request.getfixturevalue("pg_url")


@pytest.fixture
def catalog(backend: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated catalog on the parametrised backend, configured through the environment."""
    from dataops import migrate
    from dataops.config import reset_settings

    monkeypatch.setenv("DATAOPS_DATABASE_URL", backend)
    reset_settings()
    migrate.upgrade()
    return backend


@pytest.fixture
def pg_catalog(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    from dataops import migrate
    from dataops.config import reset_settings

    monkeypatch.setenv("DATAOPS_DATABASE_URL", pg_url)
    reset_settings()
    migrate.upgrade()
    return pg_url


@pytest.fixture
def redis_url() -> Iterator[str]:
    with redis_db() as url:
        yield url


@pytest.fixture
def image_dir(tmp_path: Path, corpus: Path) -> Path:
    """A writable copy of a few corpus images of different kinds."""
    dest = tmp_path / "images"
    dest.mkdir()
    picks = sorted((corpus / "clothing-dataset").glob("*.jpg"))[:12]
    picks += sorted((corpus / "kodak-photocd").glob("*.png"))[:3]
    picks += sorted((corpus / "cameratrapai-testdata").glob("*"))
    for src in picks:
        shutil.copy(src, dest / src.name)
    return dest


__all__ = ["PG_ADMIN_URL"]
