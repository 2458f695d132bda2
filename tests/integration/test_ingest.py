"""Ingest against real catalogs (SQLite and PostgreSQL): identity, idempotence, quarantine, inputs."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from dataops.catalog import service
from dataops.catalog.errors import IngestInputError
from dataops.catalog.ingest import ingest
from dataops.catalog.models import Image, ImageLocation
from dataops.db import session_scope
from dataops.storage import get_store


def _ingest(paths: list[str], **kw: object):  # type: ignore[no-untyped-def]
    return ingest(paths, transaction=session_scope, **kw)  # type: ignore[arg-type]


def test_identity_idempotence_and_locations(catalog: str, image_dir: Path, tmp_path: Path) -> None:
    first = _ingest([str(image_dir)])
    assert first.files == first.new == len(list(image_dir.iterdir()))
    assert first.quarantined == 1  # the truncated camera-trap JPEG
    again = _ingest([str(image_dir)])
    assert (again.new, again.skipped, again.quarantined) == (0, again.files, 0)

    twin = tmp_path / "elsewhere" / "copy.jpg"
    twin.parent.mkdir()
    original = sorted(image_dir.glob("*.jpg"))[0]
    shutil.copy(original, twin)
    third = _ingest([str(twin)])
    assert (third.new, third.skipped, third.locations_added) == (0, 1, 1)
    with session_scope() as s:
        image = service.get_image(s, service.known_image_sha(s, str(twin)))
        assert service.image_locations(s, image.id) == [
            str(original.resolve()),
            str(twin.resolve()),
        ]
        assert s.scalar(select(func.count()).select_from(Image)) == first.new


def test_changed_file_at_known_path_is_reingested(catalog: str, image_dir: Path) -> None:
    _ingest([str(image_dir)])
    target = sorted(image_dir.glob("*.png"))[0]
    with PILImage.open(target) as img:
        img.rotate(180).save(target)
    result = _ingest([str(target)])
    assert (result.new, result.skipped) == (1, 0)
    with session_scope() as s:
        sha = service.known_image_sha(s, str(target.resolve()))
        assert sha == hashlib.sha256(target.read_bytes()).hexdigest()


def test_quarantine_reasons_and_metadata(catalog: str, image_dir: Path) -> None:
    _ingest([str(image_dir)])
    with session_scope() as s:
        bad = service.list_images(s, status="quarantined")
        assert [Path(i.uri).name for i in bad] == ["african_elephants_truncated_file.jpg"]
        assert "truncated" in (bad[0].quarantine_reason or "")
        cmyk = s.scalar(select(Image).where(Image.uri.like("%cmyk%")))
        assert cmyk is not None and cmyk.mode == "CMYK" and cmyk.status == "ok"
        ok = service.list_images(s, status="ok")
        assert all(i.phash is not None and i.width and i.height for i in ok)


def test_inputs_globs_lists_and_attributes(catalog: str, image_dir: Path, tmp_path: Path) -> None:
    jpgs = sorted(image_dir.glob("*.jpg"))
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p) for p in jpgs[:3]) + "\n")
    assert _ingest([str(listing)]).new == 3
    assert _ingest([str(image_dir / "*.png")]).new == 3
    attrs = tmp_path / "attrs.csv"
    attrs.write_text("file,device,site\n" + f"{jpgs[4].name},phone,berlin\n")
    _ingest([str(jpgs[4])], attributes_csv=str(attrs), source="field")
    with session_scope() as s:
        found = service.list_images(s, attribute={"device": "phone"}, source="field")
        assert [i.uri for i in found] == [str(jpgs[4].resolve())]
        assert found[0].attributes == {"device": "phone", "site": "berlin"}


@pytest.mark.parametrize(
    ("bad", "message"),
    [("/no/such/folder", "no such file or folder"), ("/no/such/*.jpg", "matches no files")],
)
def test_missing_inputs_fail_before_any_write(catalog: str, bad: str, message: str) -> None:
    with pytest.raises(IngestInputError, match=message):
        _ingest([bad])
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Image)) == 0


def test_copy_into_blob_store(catalog: str, image_dir: Path) -> None:
    _ingest([str(image_dir)], copy=True)
    store = get_store()
    with session_scope() as s:
        images = service.list_images(s)
        assert all(i.blob_key for i in images)
        sample = images[0]
        assert sample.blob_key == f"{sample.sha256[:2]}/{sample.sha256}"
        assert store.get(sample.blob_key) == Path(sample.uri).read_bytes()


def test_unwritable_blob_store_fails_cleanly(
    catalog: str, image_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataops.config import reset_settings
    from dataops.storage import BlobStoreError

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    monkeypatch.setenv("DATAOPS_STORAGE_URL", (locked / "blobs").as_uri())
    monkeypatch.setenv("DATAOPS_INGEST__WORKERS", "1")
    reset_settings()
    if shutil.os.geteuid() == 0:  # type: ignore[attr-defined]
        # root ignores permissions: simulate a full disk instead
        monkeypatch.setattr("dataops.storage.BlobStore.put", _disk_full)
    with pytest.raises(BlobStoreError, match="cannot write"):
        _ingest([str(image_dir)], copy=True)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Image)) == 0
        assert s.scalar(select(func.count()).select_from(ImageLocation)) == 0


def _disk_full(self: object, data: bytes, sha256: str | None = None) -> str:
    from dataops.storage import BlobStoreError

    raise BlobStoreError("cannot write blob: No space left on device")
