"""Console pages for overview, jobs, batch requests and manifests, over HTTP (no browser):
who sees what, the request → preview → cancel flow, and the numbers on the pages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.api import ingest_files, make_queue, write_photo


def signed_in(api: TestClient, token: str) -> TestClient:
    form = api.get("/console/sign-in").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    answer = api.post(
        "/console/sign-in",
        data={"token": token, "csrf_token": csrf.group(1), "next": "/console/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return api


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


@pytest.fixture
def images(tmp_path: Path, api: TestClient) -> list[int]:
    photos = [write_photo(tmp_path / f"p{i}.jpg", seed=i) for i in range(6)]
    return ingest_files(photos)


def test_overview_shows_counts_to_staff_and_only_own_queues_to_vendors(
    api: TestClient, make_user: Any, images: list[int]
) -> None:
    queue_a = make_queue("acme", images[:2])
    make_queue("globex", images[2:4])
    staff = signed_in(api, make_user("auditor")).get("/console/")
    assert staff.status_code == 200
    assert re.search(r'Images</span><span class="value">6<', staff.text)
    api.cookies.clear()
    vendor = signed_in(api, make_user("vendor", vendor="acme")).get("/console/")
    assert vendor.status_code == 200
    assert f"/console/queues/{queue_a}" in vendor.text
    assert "globex" not in vendor.text and "Images</span>" not in vendor.text
    assert api.get("/console/jobs", follow_redirects=False).status_code == 403
    assert api.get("/console/requests", follow_redirects=False).status_code == 403
    assert api.get("/console/manifests", follow_redirects=False).status_code == 403
    assert api.get("/console/jobs/active.json").status_code == 403


def test_request_preview_then_cancel(api: TestClient, make_user: Any, images: list[int]) -> None:
    from dataops.db import session_scope
    from dataops.labeling.models import Queue

    queue_id = make_queue("acme", [])
    with session_scope() as session:
        queue = session.get(Queue, queue_id)
        assert queue is not None
        queue_name = queue.name
    client = signed_in(api, make_user("scientist"))
    form = client.get("/console/requests")
    assert form.status_code == 200 and queue_name in form.text
    refused = client.post(
        "/console/requests",
        data={"strategy": "random", "size": "3", "queue": queue_name},
        follow_redirects=False,
    )
    assert refused.status_code == 403  # no CSRF token: nothing is selected
    bad = client.post(
        "/console/requests",
        data={
            "strategy": "random",
            "size": "0",
            "queue": queue_name,
            "csrf_token": csrf_of(form.text),
        },
    )
    assert bad.status_code == 400 and "size" in bad.text and 'role="alert"' in bad.text
    made = client.post(
        "/console/requests",
        data={
            "strategy": "random",
            "size": "3",
            "queue": queue_name,
            "seed": "4",
            "csrf_token": csrf_of(form.text),
        },
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    page_url = made.headers["location"]
    page = client.get(page_url)  # the job ran in-process after the redirect was sent
    assert page.status_code == 200
    thumbs = re.findall(r'<img class="thumb" src="([^"]+)"', page.text)
    assert len(thumbs) == 3 and all(t.startswith("/v1/media/") for t in thumbs)
    assert client.get(thumbs[0].replace("&amp;", "&")).status_code == 200
    assert "Cancel batch" in page.text and "Push " not in page.text  # scientists do not push
    cancelled = client.post(
        page_url + "/cancel", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False
    )
    assert cancelled.status_code == 303
    after = client.get(page_url)
    assert "cancelled" in after.text and "Cancel batch" not in after.text
    listing = client.get("/console/requests").text
    assert page_url in listing


def test_jobs_page_groups_sync_jobs_per_queue(api: TestClient, make_user: Any) -> None:
    from dataops.db import session_scope
    from dataops.jobs import service

    queue_id = make_queue("acme", [])
    with session_scope() as session:
        for n in range(5):
            job = service.create_job(
                session, "sync", {"action": "pull", "queue_id": queue_id}, None
            )
            job.status, job.result = "succeeded", {"imported": n}
    client = signed_in(api, make_user("labeling_ops"))
    page = client.get("/console/jobs")
    assert page.status_code == 200
    row = re.search(
        r"<tr>\s*<th scope=\"row\"><a href=\"/console/jobs/list\?kind=sync\">sync</a></th>(.*?)</tr>",
        page.text,
        re.S,
    )
    assert row is not None
    cells = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))
    assert cells[0] == "5"
    assert "imported 10" in row.group(1)
    listing = client.get("/console/jobs/list?kind=sync")
    assert listing.status_code == 200 and listing.text.count('href="/console/jobs/') >= 5


def test_manifest_pages_list_datasheet_verify_and_diff(
    api: TestClient, make_user: Any, images: list[int]
) -> None:
    from dataops.db import session_scope
    from dataops.labeling.models import ACCEPTED
    from dataops.labeling.service import add_label_version
    from dataops.manifests.create import create_manifest
    from dataops.manifests.schemas import ManifestRequest

    def accept(image_id: int, cls: str) -> None:
        with session_scope() as s:
            add_label_version(
                s,
                image_id=image_id,
                payload={"class": cls},
                source="csv",
                source_id=f"{image_id}-{cls}",
                status=ACCEPTED,
            )

    for n, image_id in enumerate(images[:4]):
        accept(image_id, "hat" if n % 2 else "shirt")
    with session_scope() as s:
        create_manifest(s, ManifestRequest(name="hats-v1", splits="train=0.5,test=0.5"), actor="t")
    accept(images[4], "hat")
    with session_scope() as s:
        create_manifest(
            s,
            ManifestRequest(name="hats-v2", splits="train=0.5,test=0.5", parent="hats-v1"),
            actor="t",
        )
    client = signed_in(api, make_user("auditor"))
    listing = client.get("/console/manifests")
    assert listing.status_code == 200
    assert 'href="/console/manifests/hats-v1"' in listing.text and "hats-v2" in listing.text
    sheet = client.get("/console/manifests/hats-v2")
    assert sheet.status_code == 200 and "Datasheet" in sheet.text and "Composition" in sheet.text
    # Verifying re-hashes every file: a POST form (with its CSRF token), never a plain link.
    assert 'href="/console/manifests/hats-v2/verify' not in sheet.text
    form = client.get("/console/manifests/hats-v2/verify")
    assert form.status_code == 200 and "verify-result" not in form.text
    refused = client.post("/console/manifests/hats-v2/verify", data={"body_only": "false"})
    assert refused.status_code == 403 and "verify-result" not in refused.text
    verified = client.post(
        "/console/manifests/hats-v2/verify",
        data={"body_only": "false", "csrf_token": csrf_of(sheet.text)},
    )
    assert verified.status_code == 200 and "alert-good" in verified.text
    assert "all 5 images" in verified.text
    diff = client.get("/console/manifests/diff?a=hats-v1&b=hats-v2")
    assert diff.status_code == 200 and 'id="diff-leak"' in diff.text
    assert "No leak" in diff.text  # a child keeps its parent's splits
    assert client.get("/console/manifests/nope").status_code == 404
