"""Build a test module's world once per backend, then give every test its own copy of it.

A world (users, queues, ingested images, jobs...) that takes seconds to build is built by the
first test that needs it; `take` copies its catalog (SQLite: the file, through SQLite's backup
API; PostgreSQL: `CREATE DATABASE ... TEMPLATE`) and its data dir (blobs, signing key). Each
later test calls `restore` on its fresh catalog before anything connects to it, so it starts
from exactly the state the build left and nothing one test writes reaches another.
"""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from tests.support.services import (
    create_database,
    disconnect_database,
    drop_database,
    recreate_from_template,
)


@dataclass
class Snapshot:
    url: str  # the catalog it was taken from (SQLite file or PostgreSQL database)
    copy: str  # SQLite: a file path; PostgreSQL: a database name
    data_dir: Path
    context: Any


@dataclass
class Snapshots:
    """Per-backend snapshots of one module's world, kept in a module-scoped fixture."""

    folder: Path
    taken: dict[str, Snapshot] = field(default_factory=dict)

    def get(self, url: str) -> Snapshot | None:
        return self.taken.get(_kind(url))

    def take(self, url: str, data_dir: Path, context: Any) -> None:
        from dataops.db import dispose_engines

        kind = _kind(url)
        folder = self.folder / kind
        if kind == "sqlite":
            copy = str(folder / "catalog.db")
            folder.mkdir(parents=True)
            sqlite_copy(_sqlite_path(url), Path(copy))
        else:
            name = make_url(url).database
            assert name
            copy = f"dataops_snap_{uuid.uuid4().hex[:12]}"
            dispose_engines()
            disconnect_database(name)  # pools reconnect (pre-ping) for the rest of this test
            create_database(copy, template=name)
        saved = folder / "data"
        shutil.copytree(data_dir, saved, ignore=shutil.ignore_patterns("catalog.db*"))
        self.taken[kind] = Snapshot(url, copy, saved, context)

    def restore(self, url: str, data_dir: Path) -> Snapshot | None:
        """Put the world into a fresh catalog nothing has connected to yet; None if not taken."""
        snap = self.get(url)
        if snap is None:
            return None
        if _kind(url) == "sqlite":
            sqlite_copy(Path(snap.copy), _sqlite_path(url))
        else:
            recreate_from_template(url, snap.copy)
        shutil.copytree(snap.data_dir, data_dir, dirs_exist_ok=True)
        return snap

    def drop(self) -> None:
        for kind, snap in self.taken.items():
            if kind == "postgres":
                drop_database(snap.copy)
        self.taken.clear()


def _kind(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgres"


def _sqlite_path(url: str) -> Path:
    from dataops.db import sqlite_file

    path = sqlite_file(url)
    assert path is not None
    return path


def sqlite_copy(src_path: Path, dst_path: Path) -> None:
    """A consistent copy whatever the source's WAL holds."""
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(src_path), sqlite3.connect(dst_path)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
