"""Shared fixtures: an isolated data dir per test, real PostgreSQL databases and Redis keyspaces."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.corpus import require_corpus
from tests.support.services import (
    PG_ADMIN_URL,
    create_database,
    disconnect_database,
    drop_database,
    redis_db,
)
from tests.support.snapshot import sqlite_copy

# pyproject's addopts turns off entry-point plugins (see there); these two are used.
pytest_plugins = [
    "_hypothesis_pytestplugin",
    "schemathesis.pytest.plugin",
    "tests.support.labelstudio",
    "tests.support.api",
]

# Bytecode caches, for this run and the CLI/worker/server subprocesses it starts, even where the
# environment sets PYTHONDONTWRITEBYTECODE: without them every process compiles dataops (and
# pytest rewrites every test module) from source again, about a second per subprocess.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

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


@contextmanager
def _pg_database(template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database (empty, or a copy of ``template``), dropped afterwards."""
    name = f"dataops_t_{uuid.uuid4().hex[:12]}"
    url = create_database(name, template=template)
    try:
        yield url
    finally:
        from dataops.db import dispose_engines

        dispose_engines()
        drop_database(name)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    with _pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, isolated_env: Path) -> Iterator[str]:
    """Parametrises a test over the embedded SQLite catalog and a real PostgreSQL one (for a
    test that takes `catalog`, the database is already a copy of the migrated template)."""
    if request.param == "sqlite":
        yield f"sqlite:///{isolated_env / 'catalog.db'}"
        return
    migrated = "catalog" in request.fixturenames
    with _pg_database(request.getfixturevalue("pg_template") if migrated else None) as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite catalog migrated once per run; `catalog` copies it instead of migrating again
    (the migration chain itself is tested in tests/integration/test_migrations.py)."""
    from dataops import migrate
    from dataops.db import dispose_engines

    path = tmp_path_factory.mktemp("template") / "catalog.db"
    migrate.upgrade(f"sqlite:///{path}")
    dispose_engines()
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A PostgreSQL catalog migrated once per run: each test's database is a copy of it
    (`CREATE DATABASE ... TEMPLATE`), as isolated as a freshly migrated one."""
    from dataops import migrate
    from dataops.db import dispose_engines

    name = f"dataops_tpl_{uuid.uuid4().hex[:12]}"
    url = create_database(name)
    try:
        migrate.upgrade(url)
        dispose_engines()
        disconnect_database(name)  # a template must have no sessions while it is copied
        yield name
    finally:
        drop_database(name)


@pytest.fixture
def catalog(backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated catalog on the parametrised backend, configured through the environment."""
    from dataops.config import reset_settings
    from dataops.db import sqlite_file

    if backend.startswith("sqlite"):
        path = sqlite_file(backend)
        assert path is not None
        sqlite_copy(request.getfixturevalue("sqlite_template"), path)
    monkeypatch.setenv("DATAOPS_DATABASE_URL", backend)
    reset_settings()
    return backend


@pytest.fixture
def pg_catalog(pg_template: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated PostgreSQL catalog (a copy of the template), configured through the environment."""
    from dataops.config import reset_settings

    with _pg_database(pg_template) as url:
        monkeypatch.setenv("DATAOPS_DATABASE_URL", url)
        reset_settings()
        yield url


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
