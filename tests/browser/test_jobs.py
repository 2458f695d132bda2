"""Jobs and the overview in Chromium: sync jobs collapsed per queue, live progress polled by
console.js, and a vendor's overview holding only its own queues."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import update

from tests.browser.conftest import Console

SignIn = Callable[[Any, str], None]
Axe = Callable[[Any], list[dict[str, Any]]]


def _job(console: Console, kind: str, params: dict[str, Any], status: str, **values: Any) -> str:
    from dataops.jobs import service

    with console.session_factory() as session:
        job = service.create_job(session, kind, params, "user:test")
        job.status = status
        for key, value in values.items():
            setattr(job, key, value)
        session.commit()
        return job.id


def test_sync_jobs_are_grouped_per_queue(
    page: Any, console: Console, sign_in: SignIn, axe_violations: Axe
) -> None:
    queue = console.queues["vendor_a"]
    for n in range(12):
        _job(
            console,
            "sync",
            {"action": "pull", "queue_id": queue},
            "succeeded",
            result={"imported": n},
        )
    failed = _job(console, "ingest", {"paths": ["/nowhere"]}, "failed", error="no such folder")
    sign_in(page, "labeling_ops")
    page.goto("/console/jobs")
    rows = page.locator("table tbody tr")
    sync_rows = rows.filter(has=page.locator("th a", has_text="sync"))
    assert sync_rows.count() == 1  # twelve pulls, one row
    cells = sync_rows.first.locator("td")
    assert "vendor-a-queue" in cells.nth(0).inner_text()
    assert cells.nth(1).inner_text() == "12"
    assert "imported 66" in cells.nth(6).inner_text()  # 0 + 1 + ... + 11
    ingest = rows.filter(has=page.locator("th a", has_text="ingest"))
    assert "no such folder" in ingest.inner_text()
    assert axe_violations(page) == []
    # one by one, and one job
    page.get_by_role("link", name="Show jobs one by one").click()
    page.get_by_label("Kind").select_option("sync")  # data-autosubmit
    page.wait_for_url(re.compile(r"/console/jobs/list\?kind=sync"))
    assert page.locator("table tbody tr").count() == 12
    assert axe_violations(page) == []
    page.goto(f"/console/jobs/{failed}")
    assert "no such folder" in page.get_by_role("alert").inner_text()
    assert axe_violations(page) == []


def test_the_overview_follows_a_running_job_live(
    page: Any, console: Console, sign_in: SignIn, axe_violations: Axe
) -> None:
    from dataops.jobs.models import Job

    running = _job(console, "dedup", {}, "running", progress_done=1, progress_total=10)
    sign_in(page, "auditor")
    page.goto("/console/")
    row = page.locator(f"tr[data-job='{running}']")
    assert "1 / 10" in row.locator("[data-job-status]").inner_text()
    assert axe_violations(page) == []
    with console.session_factory() as session:
        session.execute(update(Job).where(Job.id == running).values(progress_done=7))
        session.commit()
    # console.js polls /console/jobs/active.json: the bar moves without a reload
    page.wait_for_function(
        f"() => document.querySelector(\"tr[data-job='{running}'] progress\").value === 7"
    )
    assert "7 / 10" in row.locator("[data-job-status]").inner_text()
    with console.session_factory() as session:
        session.execute(update(Job).where(Job.id == running).values(status="succeeded"))
        session.commit()
    # a finished job leaves the list: the page reloads itself
    page.wait_for_selector(f"tr[data-job='{running}']", state="detached")
    assert page.csp_errors == []


def test_a_vendor_overview_holds_only_its_queues(
    page: Any, console: Console, sign_in: SignIn, axe_violations: Axe
) -> None:
    sign_in(page, "vendor_b")
    page.goto("/console/")
    text = page.get_by_role("main").inner_text()
    assert "vendor-b-queue" in text and "vendor-a-queue" not in text
    assert "Images" not in text and "Jobs at work" not in text
    nav = page.get_by_role("navigation", name="Main").inner_text()
    assert "Jobs" not in nav and "Requests" not in nav and "Manifests" not in nav
    assert axe_violations(page) == []
    for path in ("/console/jobs", "/console/manifests", "/console/jobs/active.json"):
        answer = page.goto(path)
        assert answer is not None and answer.status == 403, path
