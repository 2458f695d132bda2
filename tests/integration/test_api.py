"""The HTTP API end to end on real catalogs: ingest → job → images → thumbnails, metrics,
OpenAPI documentation, and `dataops serve` under uvicorn."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from tests.support.api import SECRET_SERIAL, bearer, ingest_files, make_queue, write_photo
from tests.support.services import REPO
from tests.support.wait import wait_until


def test_ingest_job_images_and_thumbnails(
    api: TestClient, make_user: Any, ingest_root: Path
) -> None:
    from dataops.db import session_scope
    from dataops.events.models import Event

    for i in range(3):
        write_photo(ingest_root / f"site-a/p{i}.jpg", seed=i)
    (ingest_root / "site-a/broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    token = make_user("scientist", name="sci")
    accepted = api.post(
        "/v1/ingest", json={"paths": [str(ingest_root)], "source": "site-a"}, headers=bearer(token)
    )
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    assert accepted.json()["status_url"] == f"/v1/jobs/{job_id}"

    job = api.get(f"/v1/jobs/{job_id}", headers=bearer(token)).json()
    assert (job["kind"], job["status"], job["created_by"]) == ("ingest", "succeeded", "user:sci")
    assert job["result"]["new"] == 4, job["result"]
    assert job["result"]["quarantined"] == 1
    listed = api.get("/v1/jobs", params={"kind": "ingest"}, headers=bearer(token)).json()
    assert [j["id"] for j in listed["jobs"]] == [job_id]
    with session_scope() as session:
        created = session.query(Event).filter_by(action="job.created").one()
        assert (created.actor, created.entity_id) == ("user:sci", job_id)

    images = api.get("/v1/images", params={"source": "site-a"}, headers=bearer(token)).json()
    assert len(images["images"]) == 4
    assert set(images["images"][0]) == {"id", "sha256", "uri", "status", "quarantine_reason"}
    quarantined = api.get(
        "/v1/images", params={"status": "quarantined"}, headers=bearer(token)
    ).json()["images"]
    assert [Path(i["uri"]).name for i in quarantined] == ["broken.jpg"]
    page = api.get("/v1/images", params={"limit": 2, "offset": 1}, headers=bearer(token)).json()
    assert [i["id"] for i in page["images"]] == [i["id"] for i in images["images"][1:3]]

    first = next(i for i in images["images"] if i["status"] == "ok")
    by_id = api.get(f"/v1/images/{first['id']}", headers=bearer(token)).json()
    by_sha = api.get(f"/v1/images/{first['sha256'][:12]}", headers=bearer(token)).json()
    assert by_id == by_sha
    assert by_id["source"] == "site-a"
    assert by_id["camera"] == "TestMake TestModel"

    thumb = api.get(
        f"/v1/images/{first['id']}/thumbnail", params={"size": 32}, headers=bearer(token)
    )
    assert thumb.status_code == 200
    assert thumb.headers["content-type"] == "image/jpeg"
    assert SECRET_SERIAL.encode() not in thumb.content
    with PILImage.open(io.BytesIO(thumb.content)) as img:
        assert max(img.size) == 32
        assert img.size[1] > img.size[0]  # EXIF orientation applied: portrait
        assert not img.getexif()
    broken = api.get(f"/v1/images/{quarantined[0]['id']}/thumbnail", headers=bearer(token))
    assert broken.status_code == 409
    assert broken.json()["error"]["code"] == "image_undecodable"

    again = api.post("/v1/ingest", json={"paths": [str(ingest_root)]}, headers=bearer(token))
    rerun = api.get(f"/v1/jobs/{again.json()['job_id']}", headers=bearer(token)).json()
    assert (rerun["result"]["new"], rerun["result"]["skipped"]) == (0, 4)


def test_attribute_filters(api: TestClient, make_user: Any, tmp_path: Path) -> None:
    photos = [write_photo(tmp_path / "p" / f"{i}.jpg", seed=i) for i in range(3)]
    attrs = tmp_path / "attrs.csv"
    attrs.write_text("file,device,site\n0.jpg,phone,berlin\n1.jpg,phone,lagos\n2.jpg,dslr,berlin\n")
    ids = ingest_files(photos, attributes_csv=str(attrs))
    token = bearer(make_user("auditor"))

    def find(*pairs: str) -> list[int]:
        response = api.get("/v1/images", params={"attribute": list(pairs)}, headers=token)
        assert response.status_code == 200, response.text
        return [i["id"] for i in response.json()["images"]]

    assert find("device=phone") == ids[:2]
    assert find("device=phone", "site=berlin") == ids[:1]
    assert find("site=nowhere") == []


def test_png_with_transparency_stays_png(api: TestClient, make_user: Any, tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    PILImage.new("RGBA", (30, 30), (10, 200, 10, 128)).save(path)
    (image_id,) = ingest_files([path])
    response = api.get(f"/v1/images/{image_id}/thumbnail", headers=bearer(make_user("admin")))
    assert response.headers["content-type"] == "image/png"
    with PILImage.open(io.BytesIO(response.content)) as img:
        assert img.mode == "RGBA"


def test_unknown_routes_and_methods_are_json(api: TestClient) -> None:
    missing = api.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = api.put("/v1/images")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def test_healthz(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics:\n{text}")


def test_metrics_count_jobs_and_images(api: TestClient, make_user: Any, ingest_root: Path) -> None:
    token = bearer(make_user("labeling_ops"))
    admin = bearer(make_user("admin"))
    write_photo(ingest_root / "a.jpg")
    api.post("/v1/ingest", json={"paths": [str(ingest_root)]}, headers=admin)
    response = api.get("/metrics", headers=token)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert _metric(text, 'dataops_jobs{kind="ingest",status="succeeded"}') == 1
    assert _metric(text, 'dataops_jobs_finished_total{kind="ingest",status="succeeded"}') == 1
    assert _metric(text, 'dataops_jobs_finished_last_hour{kind="ingest",status="succeeded"}') == 1
    assert _metric(text, 'dataops_images{status="ok"}') == 1
    assert "dataops_queue_length" not in text  # no broker: jobs run in-process


@pytest.mark.redis
def test_metrics_queue_depth_and_ingest_through_the_broker(
    api: TestClient,
    make_user: Any,
    ingest_root: Path,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a broker, ingest only enqueues (no worker here), and /metrics shows the backlog."""
    import redis

    from dataops.config import reset_settings

    monkeypatch.setenv("DATAOPS_BROKER_URL", redis_url)
    reset_settings()
    admin = bearer(make_user("admin"))
    write_photo(ingest_root / "a.jpg")
    accepted = api.post("/v1/ingest", json={"paths": [str(ingest_root)]}, headers=admin)
    assert accepted.status_code == 202
    job = api.get(f"/v1/jobs/{accepted.json()['job_id']}", headers=admin).json()
    assert job["status"] == "pending"
    redis.Redis.from_url(redis_url).lpush("dedup", b"a", b"b")
    text = api.get("/metrics", headers=admin).text
    assert _metric(text, "dataops_broker_up") == 1
    assert _metric(text, 'dataops_queue_length{queue="ingest"}') == 1
    assert _metric(text, 'dataops_jobs{kind="ingest",status="pending"}') == 1


def test_metrics_and_ingest_with_the_broker_down(
    api: TestClient, make_user: Any, ingest_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataops.config import reset_settings

    monkeypatch.setenv("DATAOPS_BROKER_URL", "redis://127.0.0.1:1/0")
    reset_settings()
    admin = bearer(make_user("admin"))
    text = api.get("/metrics", headers=admin).text
    assert _metric(text, "dataops_broker_up") == 0
    refused = api.post("/v1/ingest", json={"paths": [str(ingest_root)]}, headers=admin)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "service_unavailable"
    assert api.get("/v1/jobs", headers=admin).json()["jobs"] == []


def test_vendor_gets_no_thumbnail_by_catalog_id(
    api: TestClient, make_user: Any, tmp_path: Path
) -> None:
    """Catalog ids are staff-only: a vendor probing them cannot tell its own images from others'."""
    mine, theirs = ingest_files([write_photo(tmp_path / f"{i}.jpg", seed=i) for i in range(2)])
    make_queue("acme", [mine])
    make_queue("globex", [theirs])
    vendor = bearer(make_user("vendor", vendor="acme"))
    answers = [api.get(f"/v1/images/{ref}/thumbnail", headers=vendor) for ref in (mine, theirs)]
    answers.append(api.get("/v1/images/999999/thumbnail", headers=vendor))
    assert [a.status_code for a in answers] == [403, 403, 403]
    assert len({a.content for a in answers}) == 1
    assert api.get(
        f"/v1/images/{mine}/thumbnail", headers=bearer(make_user("scientist"))
    ).is_success
    assert api.get("/v1/images", headers=vendor).status_code == 403


def test_openapi_documents_every_route(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    assert spec["info"]["title"] == "dataops"
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    schemas = spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            assert op.get("summary"), where
            assert op.get("description"), where
            assert op.get("tags"), where
            ok = next(code for code in op["responses"] if code.startswith("2"))
            content = op["responses"][ok].get("content", {})
            assert content, where
            documented = any(
                "example" in media
                or "$ref" in media.get("schema", {})
                or media.get("schema", {}).get("format") == "binary"
                for media in content.values()
            )
            assert documented, where
            for code, response in op["responses"].items():
                if code.startswith("4"):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse"), where
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            if "$ref" in body.get("schema", {}):
                name = body["schema"]["$ref"].rsplit("/", 1)[1]
                assert schemas[name].get("examples"), where
    assert spec["paths"]["/v1/ingest"]["post"]["responses"].keys() >= {"202"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_dataops_serve(catalog: str, make_user: Any) -> None:
    """The console command serves the API on the configured catalog until stopped."""
    token = make_user("auditor", name="watcher")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataops", "serve", "--port", str(port), "--log-level", "warning"],
        cwd=REPO,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def answering() -> bool:
            if proc.poll() is not None:
                return True  # exited: the assertion below shows its output
            try:
                return httpx.get(f"{url}/healthz", timeout=10).status_code == 200
            except httpx.ConnectError:
                return False

        wait_until(answering, "dataops serve to answer /healthz", timeout=60, interval=0.1)
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        me = httpx.get(f"{url}/v1/auth/me", headers=bearer(token), timeout=5)
        assert me.json()["name"] == "watcher"
        assert "server" not in me.headers
    finally:
        proc.terminate()
        proc.wait(timeout=30)
