"""A scientist's batch request in Chromium: request → watch the selection → look at the chosen
images → push them to a real Label Studio (labeling ops), and cancel another request.

This module's console server also knows the session's Label Studio (the shared fixture's
server has no Label Studio connection), so its in-process push job really creates tasks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.browser.conftest import Console, _settings, serve_console
from tests.support.corpus import require_corpus
from tests.support.labelstudio import LabelStudioInstance
from tests.support.wait import wait_until

SignIn = Callable[[Any, str], None]
QUEUE = "acme-garments"


@pytest.fixture(scope="module")
def _console_server(
    tmp_path_factory: pytest.TempPathFactory, labelstudio: LabelStudioInstance
) -> Iterator[Console]:
    """The shared fixture's console (users per role, two vendors), plus Label Studio and a
    scored vendor queue (``acme-garments``) over a dozen clothing photos."""
    from tests.support import vendor_world

    root = tmp_path_factory.mktemp("console-requests")

    def seed(settings: dict[str, str]) -> None:
        photos = vendor_world.copy_clothing(require_corpus(), root / "clothing", 12)
        with _settings(settings):
            vendor_world.build(photos, overlap=0.0, gold=0.0, gold_pool=0, queue=QUEUE)

    extra = {
        "DATAOPS_LABELSTUDIO_URL": labelstudio.url,
        "DATAOPS_LABELSTUDIO_TOKEN": labelstudio.admin_token,
    }
    with serve_console(root, extra, seed) as console:
        yield console


def _request(page: Any, strategy: str, size: int) -> str:
    """Fill in the form, submit it, and wait for the chosen images; returns the page path."""
    page.goto("/console/requests")
    page.get_by_label("Strategy").select_option(strategy)
    page.get_by_label("Size (images)").fill(str(size))
    page.get_by_label("Vendor queue").select_option(QUEUE)
    page.get_by_role("button", name="Select images").click()
    page.wait_for_url(re.compile(r"/console/requests/[0-9a-f]{32}$"))
    # console.js polls the select job and reloads once it is done
    page.wait_for_selector("#batch-summary", timeout=30_000)
    return str(page.url)


def _batch(console: Console, job_id: str) -> tuple[str, int, int, int]:
    from dataops.selection.models import Batch, BatchItem, ImageClaim

    with console.session_factory() as session:
        batch = session.scalar(select(Batch).where(Batch.job_id == job_id))
        assert batch is not None
        pushed = session.scalar(
            select(func.count())
            .select_from(BatchItem)
            .where(BatchItem.batch_id == batch.id, BatchItem.ls_task_id.is_not(None))
        )
        claims = session.scalar(
            select(func.count()).select_from(ImageClaim).where(ImageClaim.batch_id == batch.id)
        )
        return batch.status, batch.size, int(pushed or 0), int(claims or 0)


def test_request_preview_and_push_to_label_studio(
    page: Any,
    console: Console,
    sign_in: SignIn,
    axe_violations: Callable[[Any], list[dict[str, Any]]],
    labelstudio: LabelStudioInstance,
) -> None:
    sign_in(page, "labeling_ops")
    page.goto("/console/requests")
    assert axe_violations(page) == []
    url = _request(page, "least_confidence", 4)
    job_id = url.rsplit("/", 1)[1]
    assert "4 images chosen" in page.locator("#batch-summary").inner_text()
    thumbs = page.locator("ul.grid img.thumb")
    assert thumbs.count() == 4
    # each thumbnail loads through its signed URL (same origin, so the CSP lets it in)
    first = page.locator("ul.grid img.thumb").first.get_attribute("src")
    assert first is not None and first.startswith("/v1/media/")
    assert page.request.get(first).status == 200
    page.wait_for_function(
        "() => [...document.querySelectorAll('ul.grid img.thumb')]"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )
    assert _batch(console, job_id)[0] == "draft"
    assert axe_violations(page) == []

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Push 4 images to {QUEUE}").click()
    page.wait_for_url(re.compile(r"push_job=[0-9a-f]{32}"))
    wait_until(
        lambda: _batch(console, job_id)[0::2] == ("sent", 4),
        "the batch sent as four Label Studio tasks",
        timeout=60,
    )
    page.reload()
    page.wait_for_selector("text=Batch #")
    assert "sent" in page.locator("#batch-heading").inner_text()
    status, size, pushed, _claims = _batch(console, job_id)
    assert (status, size, pushed) == ("sent", 4, 4)
    # and Label Studio holds them in the queue's project
    from dataops.labeling.models import Queue

    with console.session_factory() as session:
        project = session.scalar(select(Queue.ls_project_id).where(Queue.name == QUEUE))
    tasks = httpx.get(
        f"{labelstudio.url}/api/projects/{project}",
        headers={"Authorization": f"Token {labelstudio.admin_token}"},
        timeout=30,
    ).json()
    assert tasks["task_number"] >= 4
    assert page.csp_errors == []


def test_a_scientist_cancels_a_request_and_may_not_push(
    page: Any,
    console: Console,
    sign_in: SignIn,
    axe_violations: Callable[[Any], list[dict[str, Any]]],
) -> None:
    sign_in(page, "scientist")
    url = _request(page, "kcenter", 3)
    job_id = url.rsplit("/", 1)[1]
    assert page.get_by_role("button", name=re.compile("^Push")).count() == 0
    status, size, _pushed, claims = _batch(console, job_id)
    assert (status, size, claims) == ("draft", 3, 3)
    page.get_by_label("Reason").fill("wrong class")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel batch").click()
    page.wait_for_selector("text=cancelled")
    assert _batch(console, job_id)[0::3] == ("cancelled", 0)  # images released
    assert page.get_by_role("button", name="Cancel batch").count() == 0
    assert axe_violations(page) == []
    # the request is listed, with its batch cancelled
    page.goto("/console/requests")
    row = page.locator(f"tr:has(a[href='/console/requests/{job_id}'])")
    assert "cancelled" in row.inner_text()


def test_a_bad_request_is_shown_on_the_form_and_vendors_are_refused(
    page: Any, console: Console, sign_in: SignIn
) -> None:
    sign_in(page, "scientist")
    page.goto("/console/requests")
    page.get_by_label("Strategy").select_option("hard_negative")  # needs a class
    page.get_by_label("Size (images)").fill("2")
    page.get_by_label("Vendor queue").select_option(QUEUE)
    page.get_by_role("button", name="Select images").click()
    alert = page.locator("#request-error")
    assert "class" in alert.inner_text()
    assert page.get_by_label("Size (images)").input_value() == "2"  # the form keeps its values
    page.context.clear_cookies()
    sign_in(page, "vendor_a")
    answer = page.goto("/console/requests")
    assert answer is not None and answer.status == 403
