"""Hostile or sloppy input gets a 4xx with the JSON error body; never a 5xx, never a file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from dataops.config import reset_settings
from tests.support.api import bearer, ingest_files, write_photo

TRAVERSALS = [
    "../../etc/passwd",
    "{root}/../../etc/passwd",
    "{root}/..%2F..%2F..%2Fetc%2Fpasswd",
    "{root}/%2e%2e/%2e%2e/etc/passwd",
    "{root}/%252e%252e/%252e%252e/etc/passwd",
    "{root}\\..\\..\\etc\\passwd",
    "/etc/passwd",
    "file:///etc/passwd",
    "file://{root}/../../etc/passwd",
    "s3://someone-elses-bucket/images/",
    "relative/images",
    "{root}/images\x00.jpg",
]


def _assert_error(response: Any, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    return body["error"]


@pytest.fixture
def admin(api: TestClient, make_user: Any) -> dict[str, str]:
    return bearer(make_user("admin"))


@pytest.fixture
def image_id(api: TestClient, tmp_path: Path) -> int:
    (image,) = ingest_files([write_photo(tmp_path / "photos" / "a.jpg")])
    return image


def test_malformed_json_is_400(api: TestClient, admin: dict[str, str]) -> None:
    for body in (b"{", b'{"name": "x",}', b"\xff\xfe", b"[1, 2"):
        response = api.post(
            "/v1/users", content=body, headers={**admin, "Content-Type": "application/json"}
        )
        assert _assert_error(response, 400)["code"] == "malformed_json"


WRONG_TYPES = [
    ("/v1/users", {"name": 5, "role": "admin"}),
    ("/v1/users", {"name": "x", "role": "superuser"}),
    ("/v1/users", {"name": "x", "role": "admin", "extra": True}),
    ("/v1/users", ["name", "role"]),
    ("/v1/tokens", {"user": "x", "expires_in_days": "forever"}),
    ("/v1/tokens", {"user": "x", "expires_in_days": 10**12}),
    ("/v1/ingest", {"paths": "/data"}),
    ("/v1/ingest", {"paths": []}),
    ("/v1/ingest", {"paths": [None]}),
    ("/v1/ingest", {}),
]


def test_wrong_types_are_422(api: TestClient, admin: dict[str, str]) -> None:
    for path, body in WRONG_TYPES:
        error = _assert_error(api.post(path, json=body, headers=admin), 422)
        assert error["code"] == "validation_error", (path, body)
        assert error["details"], (path, body)


def test_non_json_content_type_is_refused(api: TestClient, admin: dict[str, str]) -> None:
    response = api.post(
        "/v1/users", content=b"name=x&role=admin", headers={**admin, "Content-Type": "text/plain"}
    )
    _assert_error(response, 422)


BAD_FILTERS = [
    "limit=abc",
    "limit=-1",
    "limit=100000",
    "offset=-5",
    f"offset={10**30}",
    "status=deleted",
    "status=ok' OR '1'='1",
    "source=a%00b",
    "attribute=nokey",
    "attribute=dev'ice=phone",
    "attribute=%3Dphone",
]


def test_bad_filters_are_422(api: TestClient, admin: dict[str, str]) -> None:
    for query in BAD_FILTERS:
        _assert_error(api.get(f"/v1/images?{query}", headers=admin), 422)


def test_sql_metacharacters_are_just_text(
    api: TestClient, admin: dict[str, str], image_id: int
) -> None:
    from dataops.catalog.models import Image
    from dataops.db import session_scope

    injections = ["' OR 1=1 --", "'; DROP TABLE images; --", '" OR ""="', "%' OR '%'='"]
    for value in injections:
        for params in ({"source": value}, {"attribute": f"device={value}"}):
            response = api.get("/v1/images", params=params, headers=admin)
            assert response.status_code == 200, response.text
            assert response.json()["images"] == []
        _assert_error(api.get("/v1/jobs", params={"kind": value}, headers=admin), 422)
        _assert_error(
            api.post("/v1/users", json={"name": value, "role": "admin"}, headers=admin), 422
        )
        _assert_error(api.get(f"/v1/jobs/{value}", headers=admin), 404, 422)
    assert len(api.get("/v1/images", headers=admin).json()["images"]) == 1
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Image)) == 1


def test_ingest_paths_outside_the_roots_are_refused(
    api: TestClient, admin: dict[str, str], ingest_root: Path
) -> None:
    from dataops.db import session_scope
    from dataops.jobs.models import Job

    for raw in TRAVERSALS:
        path = raw.format(root=ingest_root)
        response = api.post("/v1/ingest", json={"paths": [path]}, headers=admin)
        assert "root:" not in _assert_error(response, 403, 422)["message"]
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_links_and_lists_out_of_the_root_are_refused(
    api: TestClient, admin: dict[str, str], ingest_root: Path, tmp_path: Path
) -> None:
    from dataops.db import session_scope
    from dataops.jobs.models import Job

    outside = tmp_path / "outside"
    private = write_photo(outside / "private.jpg")
    (ingest_root / "linked-dir").symlink_to(outside)
    mixed = ingest_root / "mixed"
    write_photo(mixed / "fine.jpg")
    (mixed / "sneaky.jpg").symlink_to(private)
    listing = ingest_root / "list.txt"
    listing.write_text(f"{private}\n")
    for path in (ingest_root / "linked-dir", mixed, listing):
        response = api.post("/v1/ingest", json={"paths": [str(path)]}, headers=admin)
        assert _assert_error(response, 403)["code"] == "path_not_allowed", path
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_ingest_without_roots_is_refused(
    api_app: FastAPI, make_user: Any, monkeypatch: pytest.MonkeyPatch, ingest_root: Path
) -> None:
    monkeypatch.setenv("DATAOPS_API__INGEST_ROOTS", "[]")
    reset_settings()
    with TestClient(api_app) as client:
        response = client.post(
            "/v1/ingest", json={"paths": [str(ingest_root)]}, headers=bearer(make_user("admin"))
        )
    assert "DATAOPS_API__INGEST_ROOTS" in _assert_error(response, 403)["message"]


HOSTILE_PATHS = [
    "/v1/images/..%2F..%2Fetc%2Fpasswd",
    "/v1/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd/thumbnail",
    "/v1/images/99999999999999999999",
    "/v1/images/-1",
    "/v1/images/1%00",
    "/v1/jobs/..%2F..%2Fetc%2Fpasswd",
    "/v1/media/..%2Fetc%2Fpasswd",
    "/v1/media/99999999999999999999?queue=1&exp=1&sig=x",
    "/v1/tokens/..%2F..",
    "/static/../../etc/passwd",
]


def test_hostile_paths_are_4xx_json(api: TestClient, admin: dict[str, str]) -> None:
    for path in HOSTILE_PATHS:
        method = "DELETE" if path.startswith("/v1/tokens") else "GET"
        response = api.request(method, path, headers=admin)
        _assert_error(response, 403, 404, 405, 422)
        assert "root:" not in response.text


STORED_LOCATIONS = [
    ("../../etc/passwd", "/data/x.jpg"),
    ("..%2F..%2Fetc%2Fpasswd", "/data/x.jpg"),
    ("/etc/passwd", "/data/x.jpg"),
    (None, "../../etc/passwd"),
    (None, "/srv/images/../../etc/passwd"),
    (None, "/etc/passwd"),
    (None, "/no/such/file.jpg"),
]


def test_stored_locations_never_serve_other_files(
    api: TestClient, admin: dict[str, str], image_id: int
) -> None:
    """Even a catalog row pointing outside the store serves nothing but a decoded image."""
    from dataops.catalog.models import Image
    from dataops.db import session_scope

    assert api.get(f"/v1/images/{image_id}/thumbnail", headers=admin).status_code == 200
    for blob_key, uri in STORED_LOCATIONS:
        with session_scope() as session:
            image = session.get(Image, image_id)
            assert image is not None
            image.blob_key, image.uri = blob_key, uri
        response = api.get(f"/v1/images/{image_id}/thumbnail", headers=admin)
        _assert_error(response, 404, 409)
        assert "root:" not in response.text


@pytest.fixture
def small_limit_client(api_app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from dataops.api.app import create_app
    from dataops.config import ApiSettings

    with TestClient(create_app(ApiSettings(max_body_bytes=1024))) as client:
        yield client


def test_oversized_body_by_content_length_is_413(
    small_limit_client: TestClient, make_user: Any
) -> None:
    admin = bearer(make_user("admin"))
    big = {"paths": ["/x" * 1000]}
    for path in ("/v1/ingest", "/v1/users", "/v1/nowhere", "/v1/images"):
        response = small_limit_client.post(path, json=big, headers=admin)
        assert _assert_error(response, 413)["code"] == "payload_too_large"


def test_oversized_streamed_body_is_413(small_limit_client: TestClient, make_user: Any) -> None:
    admin = bearer(make_user("admin"))

    def chunks() -> Iterator[bytes]:
        yield b'{"paths": ["'
        for _ in range(100):
            yield b"a" * 100
        yield b'"]}'

    response = small_limit_client.post(
        "/v1/ingest", content=chunks(), headers={**admin, "Content-Type": "application/json"}
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert _assert_error(response, 413)["code"] == "payload_too_large"


def test_body_under_the_limit_is_accepted(small_limit_client: TestClient, make_user: Any) -> None:
    response = small_limit_client.post(
        "/v1/users", json={"name": "small", "role": "auditor"}, headers=bearer(make_user("admin"))
    )
    assert response.status_code == 201
