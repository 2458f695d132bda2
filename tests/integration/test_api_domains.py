"""Labels, audits and manifests over HTTP: the read paths, reports, and who is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.security.test_authz_matrix import audit_with_report, manifest_of
from tests.support.api import bearer, create_user_token, ingest_files, write_photo


@pytest.fixture
def image(api: TestClient, tmp_path: Path) -> int:
    (image_id,) = ingest_files([write_photo(tmp_path / "p.jpg", seed=1)])
    return image_id


@pytest.fixture
def staff() -> dict[str, str]:
    return bearer(create_user_token("auditor"))


def test_labels_are_listed_and_filtered(api: TestClient, image: int, staff: dict[str, str]) -> None:
    manifest_of(image)
    labels = api.get("/v1/labels", params={"image": image}, headers=staff).json()
    assert [(label["image_id"], label["status"]) for label in labels] == [(image, "accepted")]
    assert api.get("/v1/labels", params={"status": "rejected"}, headers=staff).json() == []
    bad = api.get("/v1/labels", params={"status": "nope"}, headers=staff)
    assert bad.status_code == 422 and set(bad.json()) == {"error"}


def test_audits_list_get_and_report(api: TestClient, staff: dict[str, str]) -> None:
    audit_id = audit_with_report()
    listed = api.get("/v1/audits", headers=staff).json()
    assert [a["id"] for a in listed] == [audit_id]
    detail = api.get(f"/v1/audits/{audit_id}", headers=staff).json()
    assert detail["decision"] == "accepted" and detail["metrics"]["gate"]["n_items"] == 1
    report = api.get(f"/v1/audits/{audit_id}/report.html", headers=staff)
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    assert "audit" in report.text


def test_unknown_audit_and_batch_are_404_json(api: TestClient) -> None:
    ops = bearer(create_user_token("labeling_ops"))
    for path in ("/v1/audits/999999", "/v1/audits/999999/report.html"):
        response = api.get(path, headers=ops)
        assert response.status_code == 404 and set(response.json()) == {"error"}
    response = api.post("/v1/audits", json={"batch_id": 999999}, headers=ops)
    assert response.status_code == 404 and set(response.json()) == {"error"}


def test_manifests_list_get_datasheet_and_verify(
    api: TestClient, image: int, staff: dict[str, str]
) -> None:
    name = manifest_of(image, name="domains-v1")
    assert [m["name"] for m in api.get("/v1/manifests", headers=staff).json()] == [name]
    detail = api.get(f"/v1/manifests/{name}", headers=staff).json()
    assert detail["row_count"] == 1 and detail["names"] == [name]
    by_id = api.get(f"/v1/manifests/{detail['id']}", headers=staff).json()
    assert by_id["name"] == name
    sheet = api.get(f"/v1/manifests/{name}/datasheet", headers=staff).json()
    assert sheet["id"] == detail["id"] and isinstance(sheet["document"], dict)
    assert name in sheet["markdown"]
    full = api.post(f"/v1/manifests/{name}/verify", headers=staff).json()
    assert full["ok"] is True and full["images_checked"] == 1 and not full["body_only"]
    body = api.post(
        f"/v1/manifests/{name}/verify", params={"body_only": True}, headers=staff
    ).json()
    assert body["ok"] is True and body["body_only"] is True


def test_manifest_create_is_a_job_and_names_are_unique(api: TestClient, image: int) -> None:
    name = manifest_of(image, name="taken")
    scientist = bearer(create_user_token("scientist"))
    accepted = api.post("/v1/manifests", json={"name": "fresh", "seed": 3}, headers=scientist)
    assert accepted.status_code == 202 and "job_id" in accepted.json()
    clash = api.post("/v1/manifests", json={"name": name}, headers=scientist)
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "manifest_exists"


def test_manifest_create_takes_the_cli_options(api: TestClient, tmp_path: Path) -> None:
    (image,) = ingest_files([write_photo(tmp_path / "lab.jpg", seed=5)], source="lab-3")
    manifest_of(image, name="gen-1")
    scientist = bearer(create_user_token("scientist"))
    request = {
        "name": "gen-2",
        "seed": 7,
        "splits": "train=0.5,val=0.3,test=0.2",
        "query": {"source": "lab-3"},
        "stratify_by": "label",
        "parent": "gen-1",
        "task": "default",
    }
    accepted = api.post("/v1/manifests", json=request, headers=scientist)
    assert accepted.status_code == 202, accepted.text
    job = api.get(f"/v1/jobs/{accepted.json()['job_id']}", headers=scientist).json()
    assert job["status"] == "succeeded", job["error"]
    assert (job["result"]["parent"], job["result"]["seed"]) == ("gen-1", 7)
    assert sum(job["result"]["splits"].values()) == 1
    # Another task has no accepted labels here, and a filter can leave nothing: refused.
    for name, extra in (("other-task", {"task": "boxes"}), ("no-site", {"query": {"site": "x"}})):
        response = api.post("/v1/manifests", json={"name": name, **extra}, headers=scientist)
        job = api.get(f"/v1/jobs/{response.json()['job_id']}", headers=scientist).json()
        assert job["status"] == "failed", job
        assert "no image in scope has an accepted label" in job["error"], job["error"]
    for body, status in (
        ({"name": "x1", "parent": "no-such-manifest"}, 404),
        ({"name": "x2", "from_batches": [999999]}, 404),
        ({"name": "x3", "query": {"": "v"}}, 422),
        ({"name": "x4", "stratify_by": "   "}, 422),
    ):
        response = api.post("/v1/manifests", json=body, headers=scientist)
        assert response.status_code == status, (body, response.text)
        assert set(response.json()) == {"error"}


def test_unknown_manifest_is_404_json(api: TestClient, staff: dict[str, str]) -> None:
    for method, path in (
        ("GET", "/v1/manifests/nothing-here"),
        ("GET", "/v1/manifests/nothing-here/datasheet"),
        ("POST", "/v1/manifests/nothing-here/verify"),
    ):
        response = api.request(method, path, headers=staff)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "manifest_not_found"


def test_vendors_are_refused(api: TestClient, image: int) -> None:
    name = manifest_of(image)
    audit_id = audit_with_report()
    vendor = bearer(create_user_token("vendor", vendor="acme"))
    for method, path in (
        ("GET", "/v1/labels"),
        ("GET", "/v1/audits"),
        ("GET", f"/v1/audits/{audit_id}"),
        ("GET", f"/v1/audits/{audit_id}/report.html"),
        ("GET", "/v1/manifests"),
        ("GET", f"/v1/manifests/{name}"),
        ("GET", f"/v1/manifests/{name}/datasheet"),
        ("POST", f"/v1/manifests/{name}/verify"),
    ):
        response = api.request(method, path, headers=vendor)
        assert response.status_code == 403, path
        assert set(response.json()) == {"error"}
