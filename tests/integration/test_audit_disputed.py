"""Audits as a person reads them: disputed items by file name and Label Studio task, the list
a page at a time, metric explanations, and a report path the CLI prints that opens."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from dataops.audits import service
from dataops.audits.disputed import disputed_page, file_name
from dataops.audits.explain import EXPLANATIONS, summary_rows
from dataops.audits.models import Audit
from dataops.catalog.ingest import ingest
from dataops.catalog.models import Image
from dataops.config import reset_settings
from dataops.db import session_scope
from dataops.storage import get_store
from tests.support.api import bearer, create_user_token
from tests.support.audits import TASK_BASE, audited_batch
from tests.support.cli import run_cli, run_json

LS_URL = "https://labelstudio.example"


@pytest.fixture
def image_ids(catalog: str, image_dir: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    monkeypatch.setenv("DATAOPS_LABELSTUDIO_URL", LS_URL)
    reset_settings()
    ingest([str(image_dir)], transaction=session_scope)
    with session_scope() as s:
        return list(s.scalars(select(Image.id).where(Image.status == "ok").order_by(Image.id)))


def test_file_name_of_paths_and_urls() -> None:
    assert file_name("/data/a/IMG_1.jpg") == "IMG_1.jpg"
    assert file_name("file:///data/a/IMG_2.jpg") == "IMG_2.jpg"
    assert file_name("s3://bucket/x/y/IMG_3.png") == "IMG_3.png"
    assert file_name("https://host/img/IMG_4.jpg?sig=abc") == "IMG_4.jpg"


def test_disputed_items_carry_file_name_image_id_and_task_link(image_ids: list[int]) -> None:
    with session_scope() as s:
        done = audited_batch(s, image_ids[:4], ls_project_id=12)
    with session_scope() as s:
        audit = service.get_audit(s, done.audit_id)
        stored = audit.metrics["disputed"]
        page = disputed_page(s, audit)
        image = s.get(Image, done.disputed_image_ids[0])
        assert image is not None
        uri, sha = image.uri, image.sha256

    assert done.disputed_image_ids == [image_ids[0]]
    expected_link = f"{LS_URL}/projects/12/data?task={TASK_BASE}"
    # What the audit stored, and what a reader gets for it.
    assert stored[0]["file_name"] == Path(uri).name
    assert stored[0]["image_id"] == image_ids[0]
    assert stored[0]["ls_task_url"] == expected_link
    assert page.total == 1
    item = page.items[0]
    assert (item.image_id, item.file_name, item.sha256) == (image_ids[0], Path(uri).name, sha)
    assert (item.ls_task_id, item.ls_task_url) == (TASK_BASE, expected_link)
    assert item.tie and item.majority is None
    assert sorted(item.labels.values()) == ["cat", "dog"]

    html = get_store().get(f"audits/{done.audit_id}/report.html").decode()
    assert Path(uri).name in html
    assert f'href="{expected_link}"' in html
    assert EXPLANATIONS["cohen_kappa"].split(":")[0] in html


def test_an_older_audit_storing_only_hashes_is_named_when_read(image_ids: list[int]) -> None:
    with session_scope() as s:
        done = audited_batch(s, image_ids[:4])
        sha = s.scalar(select(Image.sha256).where(Image.id == image_ids[0]))
        metrics = {
            "gate": {"n_items": 4, "n_passed": 3},
            "disputed": [{"item": sha, "labels": {"a": "cat", "b": "dog"}, "majority": None}],
        }
        old = Audit(batch_id=done.batch_id, gate=0.7, decision="accepted", metrics=metrics)
        s.add(old)
        s.flush()
        page = disputed_page(s, old)
    item = page.items[0]
    assert item.image_id == image_ids[0]
    assert item.file_name and len(item.file_name) < 64
    assert item.ls_task_url is None  # the batch was never pushed


def test_summary_rows_explain_every_metric() -> None:
    rows = summary_rows(
        {"percent_agreement": 0.8, "cohen_kappa": 0.5, "ci": {"cohen_kappa": [0.2, 0.7]}}
    )
    assert [r["key"] for r in rows] == ["percent_agreement", "cohen_kappa"]
    assert rows[1]["ci"] == [0.2, 0.7]
    assert all(r["explanation"] == EXPLANATIONS[r["key"]] for r in rows)


def test_audit_list_pages_and_filters_over_http(image_ids: list[int], api: TestClient) -> None:
    with session_scope() as s:
        first = audited_batch(s, image_ids[:4], name="acme")
        second = audited_batch(s, image_ids[4:8], name="bolt", gate=0.99)
    staff = bearer(create_user_token("auditor"))
    vendor = bearer(create_user_token("vendor", vendor="acme"))

    newest = api.get("/v1/audits", params={"limit": 1}, headers=staff).json()
    older = api.get("/v1/audits", params={"limit": 1, "offset": 1}, headers=staff).json()
    rejected = api.get("/v1/audits", params={"decision": "rejected"}, headers=staff).json()
    assert [a["id"] for a in newest] == [second.audit_id]
    assert [a["id"] for a in older] == [first.audit_id]
    assert [(a["id"], a["decision"]) for a in rejected] == [(second.audit_id, "rejected")]
    assert newest[0]["pass_rate"] == pytest.approx(0.75)

    disputed = api.get(f"/v1/audits/{first.audit_id}/disputed", headers=staff)
    assert disputed.status_code == 200
    assert [i["image_id"] for i in disputed.json()["items"]] == first.disputed_image_ids
    assert api.get(f"/v1/audits/{first.audit_id}/disputed", headers=vendor).status_code == 403
    assert api.get("/v1/audits/999999/disputed", headers=staff).status_code == 404


def test_cli_prints_a_report_path_that_opens(image_ids: list[int]) -> None:
    with session_scope() as s:
        done = audited_batch(s, image_ids[:4])
    shown = run_json("audit", "show", str(done.audit_id))
    path = Path(shown["report_path"])
    assert path.is_file()
    assert "ACCEPTED" in path.read_text()
    flat = run_cli("audit", "show", str(done.audit_id)).stdout.replace("\n", "")
    assert f"report: {path}" in flat
    assert shown["report_html_key"] not in flat.replace(str(path), "")

    listed = run_json("audit", "list", "--offset", "1")
    assert listed == {"audits": []}
