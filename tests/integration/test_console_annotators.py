"""The console's annotator and vendor pages over HTTP (no browser): staff only, the period
picker, sorting links, and the CSV download (the browser test checks the numbers shown)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dataops.db import session_scope
from dataops.performance import export
from dataops.performance.schemas import PerformanceRequest
from dataops.performance.service import performance_report
from tests.integration.test_console_ops_pages import signed_in
from tests.support.performance import SINCE, UNTIL, build

PERIOD = {"since": "2026-11-01", "until": "2026-11-15"}


@pytest.fixture
def seeded(catalog: str) -> None:
    with session_scope() as session:
        build(session)


def _names(html: str) -> list[str]:
    return re.findall(r'<tr data-name="([^"]+)">', html)


def test_staff_see_every_annotator_and_vendor(
    seeded: None, api: TestClient, make_user: Any
) -> None:
    signed_in(api, make_user("scientist"))
    page = api.get("/console/annotators", params=PERIOD)
    assert page.status_code == 200, page.text
    assert _names(page.text) == ["a1", "a2", "b1", "b2", "solo"]
    assert 'value="2026-11-01"' in page.text and "14.00 days" in page.text
    vendors = api.get("/console/vendors", params=PERIOD)
    assert _names(vendors.text) == ["(no vendor)", "acme", "beta"]


def test_column_links_sort_the_table(seeded: None, api: TestClient, make_user: Any) -> None:
    signed_in(api, make_user("labeling_ops"))
    with session_scope() as session:
        wanted = performance_report(
            session,
            PerformanceRequest(since=SINCE, until=UNTIL, sort="answers", descending=True),
        )
    page = api.get("/console/annotators", params=PERIOD).text
    link = re.search(r'href="(/console/annotators\?[^"]*sort=answers[^"]*)"', page)
    assert link is not None
    sorted_page = api.get(link.group(1).replace("&amp;", "&")).text
    assert _names(sorted_page) == [r.name for r in wanted.rows]
    assert 'aria-sort="descending"' in sorted_page
    # The same column again: the other way round.
    again = re.search(r'href="(/console/annotators\?[^"]*sort=answers[^"]*)"', sorted_page)
    assert again is not None and "descending" not in again.group(1)


def test_csv_download_is_the_api_csv(seeded: None, api: TestClient, make_user: Any) -> None:
    signed_in(api, make_user("auditor"))
    with session_scope() as session:
        report = performance_report(
            session, PerformanceRequest(since=SINCE, until=UNTIL, group="vendor")
        )
    page = api.get("/console/vendors", params=PERIOD).text
    link = re.search(r'href="(/console/vendors\.csv[^"]*)"', page)
    assert link is not None
    sheet = api.get(link.group(1).replace("&amp;", "&"))
    assert sheet.status_code == 200
    assert sheet.text == export.to_csv(report)
    assert "attachment" in sheet.headers["content-disposition"]


def test_vendors_get_403_and_bad_dates_a_400_page(
    seeded: None, api: TestClient, make_user: Any
) -> None:
    signed_in(api, make_user("vendor", vendor="acme"))
    for path in ("/console/annotators", "/console/vendors", "/console/annotators.csv"):
        answer = api.get(path, follow_redirects=False)
        assert answer.status_code == 403, path
        # No annotator row (a bare "a1" could be part of the page's random CSRF token).
        assert _names(answer.text) == [] and "beta" not in answer.text, path
    api.cookies.clear()
    signed_in(api, make_user("admin"))
    bad = api.get("/console/annotators", params={"since": "2026-11-15", "until": "2026-11-01"})
    assert bad.status_code == 400 and "<html" in bad.text
    nonsense = api.get("/console/annotators", params={"since": "yesterday"})
    assert nonsense.status_code == 400 and "since" in nonsense.text
