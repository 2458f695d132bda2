"""Label quality over HTTP: staff only, and the refusals name the field."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.support.api import MakeUser, bearer


def test_vendors_never_see_label_issues(api: TestClient, make_user: MakeUser) -> None:
    vendor = bearer(make_user("vendor", vendor="acme"))
    assert api.get("/v1/label-issues", headers=vendor).status_code == 403
    assert api.post("/v1/label-quality", json={}, headers=vendor).status_code == 403


def test_staff_get_clear_refusals(api: TestClient, make_user: MakeUser) -> None:
    scientist = bearer(make_user("scientist"))
    missing = api.get("/v1/label-issues", params={"task": "default"}, headers=scientist)
    assert missing.status_code == 404
    refused = api.post("/v1/label-quality", json={"source": "predictions"}, headers=scientist)
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == "source"
    assert "trained on" in refused.json()["error"]["message"]
    undeclared = api.post(
        "/v1/label-quality",
        json={"source": "imported", "probabilities": "/etc/passwd", "out_of_sample": True},
        headers=scientist,
    )
    assert undeclared.status_code == 400
    assert undeclared.json()["error"]["field"] == "probabilities"
