"""Review of the console as a user and an attacker would try it: problems found, each a test
that fails until it is fixed (over HTTP against the ``console`` server; no browser needed).

Checked and found sound (no test here): other vendors' queues and batches (by id or name)
and drafts answer the same 404 page as missing ids; staff pages, thumbnails, CSV and
``/console/jobs/active.json`` refuse a vendor (403); CSRF (missing, wrong, foreign or
``null`` Origin, JSON or text bodies) is refused with 403; sign-out is POST only and ends
the session; a revoked token or an idle session ends the console session; ``next=`` never
leaves the console; every response (errors and static files included) carries the CSP.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.browser.conftest import Console


def _client(console: Console, token: str | None = None) -> httpx.Client:
    """A cookie-keeping client, signed in through the form when given a token."""
    client = httpx.Client(base_url=console.url, follow_redirects=False, timeout=30)
    if token is not None:
        form = client.get("/console/sign-in")
        found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert found is not None
        answer = client.post(
            "/console/sign-in",
            data={"token": token, "csrf_token": found.group(1), "next": "/console/"},
        )
        assert answer.status_code == 303, answer.text[:300]
    return client


def test_the_jobs_list_reaches_jobs_older_than_the_newest_100(console: Console) -> None:
    """/console/jobs/list shows the newest 100 jobs and stops: a labeling-ops lead cannot
    page back to the 101st (dataops/console/pages/jobs.py job_list: limit 100, no offset;
    templates/jobs/list.html has no pager). The contract asks every big table to paginate."""
    from dataops.jobs.models import Job

    with console.session_factory.begin() as session:
        session.add_all(
            Job(kind="manifest", status="succeeded", created_by="review") for _ in range(105)
        )
    ops = _client(console, console.tokens["labeling_ops"])
    page = ops.get("/console/jobs/list", params={"kind": "manifest"})
    assert page.status_code == 200
    rows = page.text.count('<a href="/console/jobs/')
    assert rows <= 100
    assert 'rel="next"' in page.text, "no way to reach the jobs after the newest 100"


def test_the_manifest_list_is_paginated(console: Console) -> None:
    """/console/manifests renders every manifest at once (pages/manifests.py manifest_list:
    list_manifests() then manifest_out per row, no limit): the page grows, and its queries
    with it, with every manifest ever frozen. The contract: tables on big catalogs paginate."""
    from dataops.manifests.models import Manifest

    with console.session_factory.begin() as session:
        for n in range(120):
            session.add(
                Manifest(
                    name=f"review-set-{n:03d}",
                    content_hash="sha256:" + f"{n:064x}",
                    seed=0,
                    splits={"spec": "train=1", "names": ["train"]},
                    selection={},
                    row_count=0,
                    split_counts={},
                    body_key=f"manifests/review-set-{n:03d}/body.jsonl",
                    parquet_key=f"manifests/review-set-{n:03d}/body.parquet",
                )
            )
    ops = _client(console, console.tokens["labeling_ops"])
    page = ops.get("/console/manifests")
    assert page.status_code == 200
    shown = len(set(re.findall(r"review-set-\d{3}", page.text)))
    assert shown <= 100 and 'rel="next"' in page.text, f"{shown} manifests on one page"


def test_signing_in_again_ends_the_session_the_browser_held(console: Console) -> None:
    """A new sign-in in a browser that already holds a console session ends the old one
    (found open in review; signin.py sign_in now signs the old cookie out): whoever copied
    the first cookie (a shared kiosk, a token swapped for a lower-privileged one) cannot
    keep using it."""
    first = _client(console, console.tokens["labeling_ops"])
    old_cookie = first.cookies.get("dataops_console")
    assert old_cookie
    # The same browser signs in again (say as the auditor) through a fresh sign-in form:
    # GET /console/sign-in redirects a signed-in browser, so fetch the form without the cookie.
    form = httpx.get(f"{console.url}/console/sign-in")
    found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert found is not None
    first.cookies.set(
        "dataops_console_signin",
        form.cookies["dataops_console_signin"],
        path="/console/sign-in",
    )
    again = first.post(
        "/console/sign-in",
        data={"token": console.tokens["auditor"], "csrf_token": found.group(1)},
    )
    assert again.status_code == 303
    assert first.cookies.get("dataops_console") != old_cookie

    stale = httpx.Client(base_url=console.url, follow_redirects=False)
    stale.cookies.set("dataops_console", old_cookie, path="/console")
    assert stale.get("/console/requests").status_code == 303, (
        "the replaced session still signs in as labeling_ops"
    )


@pytest.fixture(scope="module")
def audited(_console_server: Console) -> object:
    """An audited batch (two annotators, one disputed item) on this module's catalog."""
    from pathlib import Path
    from tempfile import mkdtemp

    from tests.support.api import ingest_files, write_photo
    from tests.support.audits import audited_batch

    with _console_server.settings():
        folder = Path(mkdtemp(prefix="review-audit-"))
        photos = [write_photo(folder / f"street-{i}.jpg", seed=70 + i) for i in range(4)]
        images = ingest_files(photos)
        with _console_server.session_factory.begin() as session:
            return audited_batch(session, images, name="review-team")


def test_audit_page_thumbnails_load_from_the_console_origin(
    console: Console, audited: object
) -> None:
    """/console/audits/{id} puts disputed items' thumbnails at absolute URLs on
    DATAOPS_PUBLIC_URL (dataops/audits/disputed.py signed_image_url, shown as is by
    templates/audits/show.html), while the batch and request pages turn signed URLs into paths
    on this server (labeling/batch_items.py _path, selection/requests.py _relative).
    DATAOPS_PUBLIC_URL is "the address Label Studio's browsers use" (dataops serve --help):
    when staff open the console by any other address, the CSP's img-src 'self' refuses every
    disputed thumbnail."""
    audit_id = audited.audit_id  # type: ignore[attr-defined]
    staff = _client(console, console.tokens["auditor"])
    page = staff.get(f"/console/audits/{audit_id}")
    assert page.status_code == 200
    sources = re.findall(r'<img class="thumb" src="([^"]+)"', page.text)
    assert sources, "the audit page shows no disputed thumbnail"
    foreign = [src for src in sources if not src.startswith("/")]
    assert not foreign, f"thumbnails on another origin than the page's: {foreign[:2]}"


def test_audit_thumbnails_show_when_the_console_is_opened_by_another_host_name(
    page: Any, console: Console, audited: object
) -> None:
    """The same, as a person sees it: the console opened at http://localhost:PORT (the
    server's DATAOPS_PUBLIC_URL says 127.0.0.1) -- Chromium refuses the disputed items'
    thumbnails (CSP img-src 'self') and shows broken images."""
    audit_id = audited.audit_id  # type: ignore[attr-defined]
    other = console.url.replace("127.0.0.1", "localhost")
    page.goto(f"{other}/console/sign-in")
    page.get_by_label("API token").fill(console.tokens["auditor"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/console/sign-in" not in url)
    page.csp_errors.clear()
    page.goto(f"{other}/console/audits/{audit_id}")
    page.wait_for_load_state("networkidle")
    broken = page.eval_on_selector_all(
        "img.thumb", "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    assert not page.csp_errors and not broken, (page.csp_errors[:2], broken[:2])


def test_a_job_page_names_reports_by_path_not_storage_key(
    console: Console, audited: object
) -> None:
    """/console/jobs/{id} dumps the job's result as JSON (templates/jobs/show.html
    ``job.result | tojson``): an audit job's page shows report_html_key/report_json_key,
    blob-store keys nobody can open, instead of a link to the report in the console
    (/console/audits/{id}/report.html) -- the issue's own complaint about the CLI."""
    from dataops.audits import service
    from dataops.audits.models import Audit
    from dataops.jobs.models import Job

    audit_id = audited.audit_id  # type: ignore[attr-defined]
    with console.session_factory.begin() as session:
        audit = session.get(Audit, audit_id)
        assert audit is not None and audit.report_html_key
        key = audit.report_html_key
        job = Job(
            kind="audit",
            status="succeeded",
            params={"batch_id": audit.batch_id},
            result=service.audit_out(audit).model_dump(mode="json"),
            created_by="review",
        )
        session.add(job)
        session.flush()
        job_id = job.id
    staff = _client(console, console.tokens["labeling_ops"])
    page = staff.get(f"/console/jobs/{job_id}")
    assert page.status_code == 200
    assert f'"{key}"' not in page.text, f"the job page shows the storage key {key}"


def test_a_vendor_never_hears_of_a_draft_cancelled_before_it_was_sent(console: Console) -> None:
    """A scientist's request that was cancelled while still a draft becomes ``cancelled`` and
    then shows up in the vendor's queue and batch pages (labeling/progress.py visible_batch
    and _batch_filter hide only ``status == "draft"``): the vendor reads a batch that was never
    its work, with its size, purpose and 0 sent -- the code's own rule is that "a vendor
    never hears of drafts: they are not its work (yet), and may never be"."""
    from contextlib import nullcontext
    from pathlib import Path
    from tempfile import mkdtemp

    from dataops.selection import cancel
    from dataops.selection.models import Batch, BatchItem
    from tests.support.api import ingest_files, write_photo

    folder = Path(mkdtemp(prefix="review-draft-"))
    images = ingest_files([write_photo(folder / f"draft-{i}.jpg", seed=90 + i) for i in range(3)])
    queue_id = console.queues["vendor_a"]
    with console.session_factory.begin() as session:
        batch = Batch(purpose="active_learning", strategy="random", queue_id=queue_id)
        session.add(batch)
        session.flush()
        for position, image_id in enumerate(images):
            session.add(
                BatchItem(
                    batch_id=batch.id,
                    image_id=image_id,
                    item_key=f"review-draft-{batch.id}-{image_id}",
                    position=position,
                )
            )
        batch.size = len(images)
        session.flush()
        batch_id = batch.id
    vendor = _client(console, console.tokens["vendor_a"])
    assert vendor.get(f"/console/batches/{batch_id}").status_code == 404  # a draft: hidden
    with console.session_factory.begin() as session:
        cancel.cancel_batch(
            batch_id, transaction=lambda: nullcontext(session), actor="review", reason="not needed"
        )
        assert session.get(Batch, batch_id).status == "cancelled"  # type: ignore[union-attr]
    assert vendor.get(f"/console/batches/{batch_id}").status_code == 404
    queue_page = vendor.get(f"/console/queues/{queue_id}")
    assert f'/console/batches/{batch_id}"' not in queue_page.text
    # nor is it in the queue's totals: the vendor counts only the batches it was sent
    from sqlalchemy import func, select

    from dataops.labeling.models import Queue
    from dataops.labeling.progress import queue_progress

    with console.session_factory() as session:
        queue = session.get(Queue, queue_id)
        assert queue is not None
        staff_view = queue_progress(session, [queue], vendor_view=False)[0]
        vendor_view = queue_progress(session, [queue], vendor_view=True)[0]
        sent = session.scalar(
            select(func.count())
            .select_from(Batch)
            .where(Batch.queue_id == queue_id, Batch.sent_at.is_not(None))
        )
    assert staff_view.batches > vendor_view.batches == sent


def test_the_jobs_pager_reaches_the_oldest_job(console: Console) -> None:
    """Following "Next" from the newest jobs ends at the oldest one, each job on one page."""
    from dataops.jobs.models import Job

    with console.session_factory.begin() as session:
        made = [Job(kind="label_quality", status="failed", created_by="pager") for _ in range(60)]
        session.add_all(made)
        session.flush()
        ids = {job.id for job in made}
    ops = _client(console, console.tokens["labeling_ops"])
    seen: list[str] = []
    url: str | None = "/console/jobs/list?kind=label_quality&status=failed"
    while url is not None:
        page = ops.get(url)
        assert page.status_code == 200
        seen += re.findall(r'<a href="/console/jobs/([0-9a-f]{32})">', page.text)
        found = re.search(r'<a href="([^"]+)" rel="next">', page.text)
        url = found.group(1).replace("&amp;", "&") if found else None
        assert len(seen) <= len(ids), "the pager went round in circles"
    assert sorted(seen) == sorted(ids)


def test_a_job_page_links_to_what_the_job_made(console: Console, audited: object) -> None:
    """An audit job's page links to the audit and its report in the console."""
    from dataops.audits import service
    from dataops.audits.models import Audit
    from dataops.jobs.models import Job

    audit_id = audited.audit_id  # type: ignore[attr-defined]
    with console.session_factory.begin() as session:
        audit = session.get(Audit, audit_id)
        assert audit is not None
        job = Job(
            kind="audit",
            status="succeeded",
            params={"batch_id": audit.batch_id},
            result=service.audit_out(audit).model_dump(mode="json"),
            created_by="review",
        )
        session.add(job)
        session.flush()
        job_id = job.id
    staff = _client(console, console.tokens["labeling_ops"])
    page = staff.get(f"/console/jobs/{job_id}").text
    assert f'href="/console/audits/{audit_id}/report.html"' in page
    assert "report_json_key" not in page and "report html key" not in page
    report = staff.get(f"/console/audits/{audit_id}/report.html")
    assert report.status_code == 200


def test_verifying_a_manifest_is_a_form_not_a_link(console: Console) -> None:
    """Re-hashing every file of a manifest is too much work for a GET a prefetcher follows:
    the manifest page offers POST buttons with the CSRF token; GET only explains."""
    from dataops.manifests.models import Manifest

    with console.session_factory.begin() as session:
        session.add(
            Manifest(
                name="verify-form",
                content_hash="sha256:" + "f" * 64,
                seed=0,
                splits={"spec": "train=1", "names": ["train"]},
                selection={},
                row_count=0,
                split_counts={},
                body_key="manifests/verify-form/body.jsonl",
                parquet_key="manifests/verify-form/body.parquet",
            )
        )
    ops = _client(console, console.tokens["labeling_ops"])
    sheet = ops.get("/console/manifests/verify-form")
    assert sheet.status_code == 200
    assert 'href="/console/manifests/verify-form/verify' not in sheet.text
    assert 'method="post" action="/console/manifests/verify-form/verify"' in sheet.text
    explained = ops.get("/console/manifests/verify-form/verify")
    assert explained.status_code == 200 and "verify-result" not in explained.text
    refused = ops.post("/console/manifests/verify-form/verify", data={"body_only": "true"})
    assert refused.status_code == 403 and "verify-result" not in refused.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', sheet.text)
    assert token is not None
    done = ops.post(
        "/console/manifests/verify-form/verify",
        data={"body_only": "true", "csrf_token": token.group(1)},
    )
    # the body was never written: verification runs and reports it, it does not crash
    assert done.status_code == 200 and 'id="verify-result"' in done.text
    assert "alert-bad" in done.text


def _session_cookie(console: Console, headers: dict[str, str]) -> str:
    """The Set-Cookie of the console session a sign-in with these headers answers."""
    form = httpx.get(f"{console.url}/console/sign-in", headers=headers)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    pre = re.search(r"dataops_console_signin=([^;]+)", form.headers.get("set-cookie", ""))
    assert csrf is not None and pre is not None
    answer = httpx.post(
        f"{console.url}/console/sign-in",
        headers={**headers, "Cookie": f"dataops_console_signin={pre.group(1)}"},
        data={"token": console.tokens["auditor"], "csrf_token": csrf.group(1)},
    )
    assert answer.status_code == 303, answer.text[:300]
    found = [c for c in answer.headers.get_list("set-cookie") if c.startswith("dataops_console=")]
    assert len(found) == 1, answer.headers.get_list("set-cookie")
    return found[0].lower()


def test_the_session_cookie_is_secure_when_the_browser_talks_https_through_a_proxy(
    console: Console,
) -> None:
    """Behind a TLS proxy uvicorn takes the scheme from X-Forwarded-Proto (proxy headers are
    trusted from 127.0.0.1 by default): the cookie is Secure then, and not over plain http
    (a browser on http drops Secure cookies and could never sign in)."""
    assert "; secure" in _session_cookie(console, {"X-Forwarded-Proto": "https"})
    assert "; secure" not in _session_cookie(console, {})
