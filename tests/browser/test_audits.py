"""The audits pages in Chromium: the list, one audit's report whose decision and numbers are
the audit row's, disputed items by file name with a thumbnail and a Label Studio link, the
stored HTML report opened with the console session; vendors refused."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dataops.audits.explain import EXPLANATIONS
from dataops.audits.models import Audit
from dataops.catalog.models import Image
from dataops.config import reset_settings
from dataops.db import session_scope
from dataops.storage import get_store
from tests.browser.conftest import Console
from tests.support.api import ingest_files, write_photo
from tests.support.audits import TASK_BASE, audited_batch

SignIn = Callable[[Any, str], None]
# Photo widths never repeat within a run, so every seeded photo is a new image.
_sizes = itertools.count()
LS_URL = "https://labelstudio.example"


@dataclass(frozen=True)
class Seeded:
    audit_id: int
    batch_id: int
    relabel_batch_id: int | None
    decision: str
    pass_rate: float
    gate: float
    n_items: int
    n_passed: int
    summary: dict[str, Any]
    disputed_file: str
    disputed_sha: str


@pytest.fixture
def audited(
    console: Console, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Seeded]:
    """``audited(gate=0.7)``: four new photos labeled by two annotators (one tie) and audited,
    with the report files in the server's blob store."""
    assert console.log is not None
    monkeypatch.setenv("DATAOPS_DATA_DIR", str(console.log.parent / "data"))
    monkeypatch.setenv("DATAOPS_LABELSTUDIO_URL", LS_URL)
    reset_settings()
    get_store.cache_clear()

    def make(gate: float = 0.7) -> Seeded:
        tag = uuid.uuid4().hex[:8]
        photos = [
            write_photo(
                tmp_path / f"site-{tag}-{i}.jpg",
                size=(60 + next(_sizes), 40 + i),
                seed=100 + i,
                orientation=1,
            )
            for i in range(4)
        ]
        ids = ingest_files(photos)
        with session_scope() as s:
            done = audited_batch(s, ids, name=f"v{tag}", ls_project_id=12, gate=gate)
        with session_scope() as s:
            audit = s.get(Audit, done.audit_id)
            image = s.get(Image, done.disputed_image_ids[0])
            assert audit is not None and image is not None and audit.pass_rate is not None
            return Seeded(
                audit_id=audit.id,
                batch_id=done.batch_id,
                relabel_batch_id=audit.relabel_batch_id,
                decision=audit.decision,
                pass_rate=audit.pass_rate,
                gate=audit.gate,
                n_items=audit.metrics["gate"]["n_items"],
                n_passed=audit.metrics["gate"]["n_passed"],
                summary=audit.metrics["summary"],
                disputed_file=Path(image.uri).name,
                disputed_sha=image.sha256,
            )

    return make


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def test_an_audit_report_shows_the_audit_rows_decision_and_numbers(
    page: Any,
    sign_in: SignIn,
    audited: Callable[..., Seeded],
    axe_violations: Callable[[Any], list[dict[str, Any]]],
) -> None:
    seeded = audited()
    sign_in(page, "auditor")
    page.goto("/console/audits")
    row = page.get_by_role("row").filter(
        has=page.get_by_role("link", name=f"Audit {seeded.audit_id}", exact=True)
    )
    assert seeded.decision in row.inner_text()
    assert _percent(seeded.pass_rate) in row.inner_text()
    assert axe_violations(page) == []

    row.get_by_role("link", name=f"Audit {seeded.audit_id}", exact=True).click()
    page.wait_for_url(re.compile(rf"/console/audits/{seeded.audit_id}$"))
    assert page.get_by_role("heading", level=1).inner_text() == (
        f"Audit {seeded.audit_id} of batch {seeded.batch_id}"
    )
    decision = page.locator(".decision")
    assert seeded.decision.upper() in decision.inner_text()
    assert page.locator("#pass-rate").inner_text() == _percent(seeded.pass_rate)
    assert page.locator("#gate").inner_text() == _percent(seeded.gate)
    assert page.locator("#passed").inner_text() == str(seeded.n_passed)
    assert page.locator("#audited").inner_text() == str(seeded.n_items)

    # Each metric with its value from the audit row and its plain-language meaning.
    for key in ("percent_agreement", "cohen_kappa"):
        metric = page.locator(f'tr[data-metric="{key}"]')
        assert f"{seeded.summary[key]:.3f}" in metric.inner_text()
        assert EXPLANATIONS[key] in metric.inner_text()

    # What happens next: the relabel batch, as a link.
    assert seeded.relabel_batch_id is not None
    assert page.locator("#relabel-link").get_attribute("href") == (
        f"/console/batches/{seeded.relabel_batch_id}"
    )

    # Disputed items by file name (never the hash), with a thumbnail and the task link.
    text = page.locator("main").inner_text()
    assert seeded.disputed_sha not in text
    tile = page.locator(".disputed .tile")
    assert tile.count() == 1
    assert tile.locator(".file-name").inner_text() == seeded.disputed_file
    thumb = tile.get_by_role("img", name=seeded.disputed_file)
    thumb.scroll_into_view_if_needed()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle()
    )
    link = tile.get_by_role("link", name=re.compile("Label Studio task"))
    assert link.get_attribute("href") == f"{LS_URL}/projects/12/data?task={TASK_BASE}"
    assert axe_violations(page) == []
    assert page.csp_errors == []

    # The stored HTML report opens in the browser with the console session alone.
    response = page.goto(f"/console/audits/{seeded.audit_id}/report.html")
    assert response is not None and response.status == 200
    assert seeded.decision.upper() in page.locator("body").inner_text()
    assert seeded.disputed_file in page.locator("body").inner_text()
    assert axe_violations(page) == []


def test_the_audit_list_filters_by_decision(
    page: Any, sign_in: SignIn, audited: Callable[..., Seeded]
) -> None:
    accepted = audited(gate=0.7)
    rejected = audited(gate=0.99)
    assert (accepted.decision, rejected.decision) == ("accepted", "rejected")
    sign_in(page, "labeling_ops")
    page.goto("/console/audits")
    page.get_by_label("Decision").select_option("rejected")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"decision=rejected"))
    body = page.locator("tbody").inner_text()
    assert f"Audit {rejected.audit_id}" in body
    assert f"Audit {accepted.audit_id}" not in body


def test_vendors_cannot_reach_audits(
    page: Any, sign_in: SignIn, audited: Callable[..., Seeded]
) -> None:
    seeded = audited()
    sign_in(page, "vendor_a")
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Audits").count() == 0
    for path in (
        "/console/audits",
        f"/console/audits/{seeded.audit_id}",
        f"/console/audits/{seeded.audit_id}/report.html",
    ):
        response = page.goto(path)
        assert response is not None and response.status == 403, path
        assert seeded.disputed_file not in page.content()
