"""Ingest roots hold where files are read, not only where they are named; served and
labelled bytes are the image's bytes, checked by sha256 as they are read."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import select

from tests.support.api import bearer, ingest_files, make_queue, write_photo


@pytest.fixture
def scientist(api: TestClient, make_user: Any) -> dict[str, str]:
    return bearer(make_user("scientist"))


@pytest.fixture
def queued_jobs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Accepted jobs wait here, as they wait in a broker queue, until the test runs them."""
    from dataops.jobs import dispatch

    waiting: list[str] = []
    monkeypatch.setattr(dispatch, "start", lambda job, **_: waiting.append(job.id))
    return waiting


def _run(job_id: str) -> dict[str, Any]:
    """What a worker does with a job id it takes off the queue."""
    from dataops.jobs import runner

    job = runner.execute(job_id)
    assert job.status == "succeeded", job.error
    assert job.result is not None
    return dict(job.result)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _catalogued(sha256: str) -> bool:
    from dataops.catalog.models import Image
    from dataops.db import session_scope

    with session_scope() as session:
        return session.scalar(select(Image.id).where(Image.sha256 == sha256)) is not None


# --------------------------------------------------------------------------- paths


def test_link_planted_after_the_request_is_refused_where_the_file_is_read(
    api: TestClient, scientist: dict[str, str], ingest_root: Path, tmp_path: Path, queued_jobs: Any
) -> None:
    private = [
        write_photo(tmp_path / "elsewhere" / f"private-payroll-{i}.jpg", seed=9 + i) for i in (0, 1)
    ]
    folder = ingest_root / "batch"
    write_photo(folder / "a.jpg", seed=1)
    write_photo(folder / "b.jpg", seed=2)
    single = write_photo(ingest_root / "c.jpg", seed=3)
    response = api.post("/v1/ingest", json={"paths": [str(folder), str(single)]}, headers=scientist)
    assert response.status_code == 202, response.text
    # Between the request and the run, two files become links out of the root.
    for victim, target in zip((folder / "b.jpg", single), private, strict=True):
        victim.unlink()
        victim.symlink_to(target)

    (job_id,) = queued_jobs
    result = _run(job_id)
    assert not any(_catalogued(_sha(p)) for p in private)
    assert (result["new"], result["refused"]) == (1, 2), result
    shown = api.get(f"/v1/jobs/{job_id}", headers=scientist).text
    assert "b.jpg: refused" in shown and "c.jpg: refused" in shown
    assert "private-payroll" not in shown and "elsewhere" not in shown, shown


def test_folder_or_list_swapped_for_a_link_after_the_request_reveals_nothing(
    api: TestClient, scientist: dict[str, str], ingest_root: Path, tmp_path: Path, queued_jobs: Any
) -> None:
    """Neither the names in a folder elsewhere nor the lines of a file elsewhere reach the job."""
    elsewhere = tmp_path / "elsewhere"
    secret_photo = write_photo(elsewhere / "photos" / "secret-name.jpg", seed=7)
    secret_text = elsewhere / "secrets.txt"
    secret_text.write_text("TOPSECRET-LINE-1\nTOPSECRET-LINE-2\n")
    folder = ingest_root / "batch"
    write_photo(folder / "a.jpg")
    listing = ingest_root / "list.txt"
    listing.write_text(f"{write_photo(ingest_root / 'listed.jpg', seed=3)}\n")
    for path in (folder, listing):
        response = api.post("/v1/ingest", json={"paths": [str(path)]}, headers=scientist)
        assert response.status_code == 202, response.text
    folder.rename(ingest_root / "batch-old")
    folder.symlink_to(elsewhere / "photos")
    listing.unlink()
    listing.symlink_to(secret_text)

    for job_id, path in zip(queued_jobs, (folder, listing), strict=True):
        result = _run(job_id)
        assert (result["new"], result["refused"]) == (0, 1), result
        assert result["errors"] == [f"{path}: refused: outside the ingest roots"]
        shown = api.get(f"/v1/jobs/{job_id}", headers=scientist).text
        assert "TOPSECRET" not in shown and "secret-name" not in shown, shown
    assert not _catalogued(_sha(secret_photo))


def test_fifo_list_file_does_not_block_the_request(
    api: TestClient, scientist: dict[str, str], ingest_root: Path
) -> None:
    from dataops.catalog.errors import IngestInputError
    from dataops.catalog.ingest import expand_inputs

    listing = ingest_root / "list.txt"
    os.mkfifo(listing)

    def expand() -> str:
        try:
            expand_inputs([str(listing)])
        except IngestInputError as exc:
            return str(exc)
        return "expanded"

    try:
        # What the request and the worker both do with the path, bounded in time first.
        assert "not a regular file (a FIFO)" in _finishes(expand)
    finally:
        with contextlib.suppress(OSError):
            os.close(os.open(listing, os.O_WRONLY | os.O_NONBLOCK))
    response = api.post("/v1/ingest", json={"paths": [str(listing)]}, headers=scientist)
    assert response.status_code == 400, response.text
    assert "not a regular file (a FIFO)" in response.json()["error"]["message"]


@pytest.mark.parametrize("swap", ["file", "folder"])
def test_link_planted_between_the_check_and_the_open_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swap: str
) -> None:
    """The narrowest window: the path was resolved and found inside the root, then a file or
    a folder on it is swapped for a link before it is opened."""
    from dataops import storage

    root = tmp_path / "root"
    outside = tmp_path / "outside"
    write_photo(outside / "d" / "x.jpg", seed=5)
    target = write_photo(root / "d" / "x.jpg", seed=6)
    checked = storage.within_roots

    def check_then_swap(location: str, roots: list[str]) -> bool:
        inside = checked(location, roots)
        if swap == "file":
            target.unlink()
            target.symlink_to(outside / "d" / "x.jpg")
        else:
            (root / "d").rename(root / "d-old")
            (root / "d").symlink_to(outside / "d")
        return inside

    monkeypatch.setattr(storage, "within_roots", check_then_swap)
    with pytest.raises(storage.RefusedLocation, match="link"):
        storage.read_uri(str(target), [str(root)])


@pytest.fixture
def fifo(ingest_root: Path) -> Iterator[Path]:
    path = ingest_root / "batch" / "x.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    yield path
    # A reader still blocked on the FIFO (a regression) gets end-of-file and lets go.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def _finishes(work: Any, seconds: float = 60) -> Any:
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.update(value=work()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the ingest blocked on a FIFO"
    return out["value"]


def test_fifo_named_jpg_is_refused_over_http_without_blocking(
    api: TestClient, scientist: dict[str, str], fifo: Path, queued_jobs: Any
) -> None:
    write_photo(fifo.parent / "fine.jpg")
    response = api.post("/v1/ingest", json={"paths": [str(fifo.parent)]}, headers=scientist)
    assert response.status_code == 202, response.text
    result = _finishes(lambda: _run(queued_jobs[0]))
    assert (result["new"], result["refused"]) == (1, 1), result
    assert any(
        e.startswith(f"{fifo}: refused: not a regular file (a FIFO)") for e in result["errors"]
    )


def test_fifo_named_jpg_is_refused_by_a_local_ingest(catalog: str, fifo: Path) -> None:
    from dataops.catalog.ingest import ingest
    from dataops.db import session_scope

    write_photo(fifo.parent / "fine.jpg")
    result = _finishes(lambda: ingest([str(fifo.parent)], transaction=session_scope))
    assert (result.new, result.refused, result.unreadable) == (1, 1, 0)
    assert "not a regular file (a FIFO)" in result.errors[0]


def test_refusals_name_paths_as_given_not_where_links_resolve(
    api: TestClient, scientist: dict[str, str], ingest_root: Path, tmp_path: Path
) -> None:
    private = write_photo(tmp_path / "secret-place" / "payroll.jpg")
    mixed = ingest_root / "mixed"
    write_photo(mixed / "fine.jpg")
    (mixed / "sneaky.jpg").symlink_to(private)
    response = api.post("/v1/ingest", json={"paths": [str(mixed)]}, headers=scientist)
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "path_not_allowed"
    assert "sneaky.jpg" in error["message"]
    assert "secret-place" not in response.text and "payroll" not in response.text


# --------------------------------------------------------------------------- bytes


def _write_bmp(path: Path, colour: tuple[int, int, int]) -> Path:
    """An uncompressed picture: same size on disk whatever the colour."""
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.new("RGB", (48, 32), colour).save(path, format="BMP")
    return path


def _overwrite_in_place(path: Path, colour: tuple[int, int, int]) -> None:
    """Other pixels, same size and same modification time."""
    before = path.stat()
    _write_bmp(path, colour)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def _media(api: TestClient, image_id: int, queue_id: int) -> Any:
    from dataops.api import signing

    parts = urlsplit(signing.signed_image_url(image_id, queue_id))
    return api.get(parts.path, params={k: v[0] for k, v in parse_qs(parts.query).items()})


def _colour(response: Any) -> tuple[int, ...]:
    assert response.status_code == 200, response.text
    with PILImage.open(io.BytesIO(response.content)) as img:
        return tuple(img.convert("RGB").getpixel((img.width // 2, img.height // 2)))


def _is_red(pixel: tuple[int, ...]) -> bool:
    return pixel[0] > 180 and pixel[2] < 60


def _assert_changed(response: Any) -> None:
    assert response.status_code == 409, (response.status_code, response.text[:200])
    error = response.json()["error"]
    assert error["code"] == "image_changed"
    assert "sha256" in error["message"]


def test_file_overwritten_in_place_is_never_served_under_the_old_id(
    api: TestClient, scientist: dict[str, str], ingest_root: Path, queued_jobs: Any
) -> None:
    path = _write_bmp(ingest_root / "red.bmp", (220, 20, 20))
    (old,) = ingest_files([path])
    queue = make_queue("acme", [old])
    # Served (and its renderings cached) while the file is right.
    assert _is_red(_colour(api.get(f"/v1/images/{old}/thumbnail", headers=scientist)))
    assert _is_red(_colour(_media(api, old, queue)))

    _overwrite_in_place(path, (20, 20, 220))
    _assert_changed(api.get(f"/v1/images/{old}/thumbnail", headers=scientist))
    _assert_changed(_media(api, old, queue))
    detail = api.get(f"/v1/images/{old}", headers=scientist).json()
    assert detail["stale_locations"] == [str(path)]

    # Re-ingest does not take the same size and time for the same bytes.
    response = api.post("/v1/ingest", json={"paths": [str(ingest_root)]}, headers=scientist)
    assert response.status_code == 202, response.text
    result = _run(queued_jobs[0])
    assert (result["new"], result["skipped"]) == (1, 0), result
    new = api.get(f"/v1/images/{_sha(path)}", headers=scientist).json()
    assert new["locations"] == [str(path)] and new["stale_locations"] == []
    assert not _is_red(_colour(api.get(f"/v1/images/{new['id']}/thumbnail", headers=scientist)))
    # The old image still names the path as its original location, and still refuses it.
    _assert_changed(api.get(f"/v1/images/{old}/thumbnail", headers=scientist))
    _assert_changed(_media(api, old, queue))


def test_moved_location_leaves_no_stale_uri_serving_the_new_file(
    api: TestClient, scientist: dict[str, str], ingest_root: Path
) -> None:
    path = write_photo(ingest_root / "p.jpg", seed=1)
    (old,) = ingest_files([path])
    write_photo(path, size=(90, 70), seed=4)  # another size: the location moves at re-ingest
    (new,) = ingest_files([path])
    assert new != old
    assert api.get(f"/v1/images/{old}", headers=scientist).json()["stale_locations"] == [str(path)]
    _assert_changed(api.get(f"/v1/images/{old}/thumbnail", headers=scientist))
    assert api.get(f"/v1/images/{new}/thumbnail", headers=scientist).status_code == 200


def test_restored_file_is_served_again(
    api: TestClient, scientist: dict[str, str], ingest_root: Path
) -> None:
    path = _write_bmp(ingest_root / "red.bmp", (220, 20, 20))
    original = path.read_bytes()
    (image,) = ingest_files([path])
    _overwrite_in_place(path, (20, 220, 20))
    _assert_changed(api.get(f"/v1/images/{image}/thumbnail", headers=scientist))
    stale = api.get(f"/v1/images/{image}", headers=scientist).json()["stale_locations"]
    assert stale == [str(path)]
    path.write_bytes(original)
    assert _is_red(_colour(api.get(f"/v1/images/{image}/thumbnail", headers=scientist)))
    ingest_files([path])  # a re-ingest that finds the image's bytes there clears the record
    assert api.get(f"/v1/images/{image}", headers=scientist).json()["stale_locations"] == []


def test_contact_sheets_and_audit_reports_show_no_changed_bytes(
    catalog: str, tmp_path: Path
) -> None:
    from dataops.audits.report import thumbnail
    from dataops.catalog.errors import ImageChanged
    from dataops.catalog.models import Image
    from dataops.catalog.verify import read_verified
    from dataops.db import session_scope
    from dataops.dedup import contact_sheet
    from dataops.storage import get_store

    path = _write_bmp(tmp_path / "red.bmp", (220, 20, 20))
    (image_id,) = ingest_files([path])
    with session_scope() as session:
        image = session.get(Image, image_id)
    assert image is not None
    assert contact_sheet.image_bytes(image) == path.read_bytes()
    _overwrite_in_place(path, (20, 20, 220))
    assert contact_sheet.image_bytes(image) is None
    with pytest.raises(ImageChanged):
        read_verified(image, store=get_store())
    assert thumbnail(image, get_store()) is None
