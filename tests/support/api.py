"""The HTTP API in tests: an app and TestClient on the `catalog` fixture, users with tokens,
vendor queues with batches, and small images that carry sensitive metadata.

tests/conftest.py loads these fixtures for every test module.
PYTEST_DONT_REWRITE: the module has no assertions, and test modules import it first.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import ExifTags
from PIL import Image as PILImage

from dataops.config import reset_settings

SECRET_SERIAL = "SN-SECRET-8675309"
SECRET_OWNER = "Jane Q. Secretowner"
GPS_LATITUDE = (52.0, 31.0, 12.0)

_names = itertools.count(1)

MakeUser = Callable[..., str]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def write_photo(
    path: Path, *, size: tuple[int, int] = (60, 40), orientation: int = 6, seed: int = 0
) -> Path:
    """A JPEG with GPS, a body serial number, an owner comment, XMP and an EXIF orientation.

    The left half is red and the right half blue, so the served orientation can be checked.
    """
    width, height = size
    img = PILImage.new("RGB", size, (200, 30, (30 + 47 * seed) % 120))
    img.paste((30, (30 + 29 * seed) % 120, 200), (width // 2, 0, width, height))
    exif = PILImage.Exif()
    exif[0x010F] = "TestMake"
    exif[0x0110] = "TestModel"
    exif[0x0112] = orientation
    exif[ExifTags.IFD.Exif] = {0xA431: SECRET_SERIAL, 0xA430: SECRET_OWNER}
    exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: GPS_LATITUDE, 3: "E", 4: (13.0, 24.0, 0.0)}
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(
        path,
        format="JPEG",
        quality=95,
        exif=exif.tobytes(),
        comment=f"owner {SECRET_OWNER}".encode(),
        xmp=f"<x:xmpmeta>{SECRET_OWNER}</x:xmpmeta>".encode(),
    )
    return path


def ingest_files(paths: list[Path], **kwargs: object) -> list[int]:
    """Catalog ids of the given files, ingested in this process."""
    from dataops.catalog import service
    from dataops.catalog.ingest import ingest
    from dataops.db import session_scope

    ingest([str(p) for p in paths], transaction=session_scope, **kwargs)  # type: ignore[arg-type]
    with session_scope() as session:
        return [
            service.get_image(session, service.known_image_sha(session, str(p.resolve()))).id
            for p in paths
        ]


def ensure_vendor(name: str) -> int:
    from sqlalchemy import select

    from dataops.db import session_scope
    from dataops.labeling.models import Vendor

    with session_scope() as session:
        found = session.scalar(select(Vendor.id).where(Vendor.name == name))
        if found is not None:
            return found
        vendor = Vendor(name=name)
        session.add(vendor)
        session.flush()
        return vendor.id


def make_queue(vendor: str, image_ids: list[int]) -> int:
    """A queue of `vendor` with one batch holding the given images; returns the queue id."""
    from dataops.db import session_scope
    from dataops.labeling.models import Guideline, Queue
    from dataops.selection.models import Batch, BatchItem

    vendor_id = ensure_vendor(vendor)
    n = next(_names)
    with session_scope() as session:
        guideline = Guideline(
            name=f"guideline-{n}",
            version=1,
            sha256=hashlib.sha256(f"guideline-{n}".encode()).hexdigest(),
            kind="classification",
            classes=["helmet", "no_helmet"],
            body="# Helmets\n",
            label_config="<View/>",
        )
        session.add(guideline)
        session.flush()
        queue = Queue(name=f"{vendor}-queue-{n}", vendor_id=vendor_id, guideline_id=guideline.id)
        session.add(queue)
        session.flush()
        batch = Batch(purpose="active_learning", strategy="random", queue_id=queue.id)
        session.add(batch)
        session.flush()
        for position, image_id in enumerate(image_ids):
            key = hashlib.sha256(f"{batch.id}:{image_id}".encode()).hexdigest()
            session.add(
                BatchItem(batch_id=batch.id, image_id=image_id, item_key=key, position=position)
            )
        batch.size = len(image_ids)
        session.flush()
        return queue.id


def create_user_token(
    role: str, *, vendor: str | None = None, name: str | None = None, expires_days: int = 1
) -> str:
    from dataops.auth import service
    from dataops.db import session_scope

    if vendor is not None:
        ensure_vendor(vendor)
    user_name = name or f"{role.replace('_', '-')}-{next(_names)}"
    with session_scope() as session:
        service.create_user(session, user_name, role, vendor=vendor, actor="test")
        new = service.create_token(
            session, user_name, expires_in=timedelta(days=expires_days), actor="test"
        )
        return new.token


@pytest.fixture
def ingest_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The one folder POST /v1/ingest may read in tests."""
    root = tmp_path / "incoming"
    root.mkdir()
    monkeypatch.setenv("DATAOPS_API__INGEST_ROOTS", f'["{root}"]')
    reset_settings()
    return root


@pytest.fixture
def api_app(catalog: str, ingest_root: Path, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    from dataops.api.app import create_app
    from dataops.config import reset_settings

    monkeypatch.setenv("DATAOPS_INGEST__WORKERS", "1")
    reset_settings()
    return create_app()


@pytest.fixture
def api(api_app: FastAPI) -> Iterator[TestClient]:
    """A client for the app on the parametrised catalog (SQLite and PostgreSQL)."""
    with TestClient(api_app) as client:
        yield client


@pytest.fixture
def make_user(catalog: str) -> MakeUser:
    """``make_user(role, vendor=None, name=None) -> token`` for a new user of that role."""
    return create_user_token
