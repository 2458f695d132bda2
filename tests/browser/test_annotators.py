"""Annotator and vendor performance pages in Chromium: the table shows the numbers computed
independently from the raw rows, the period picker and column links work, the CSV download
holds the same numbers, no serious accessibility violations, and vendors are refused."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Console
from tests.support.performance import build, expected

SignIn = Callable[[Any, str], None]
Axe = Callable[[Any], list[dict[str, Any]]]
PERIOD = "since=2026-11-01&until=2026-11-15"
_NUMBER = re.compile(r"-?[\d,]+(?:\.\d+)?")


@pytest.fixture(scope="module")
def _seeded(_console_server: Console, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The scenario, once per module; its audit report goes to a data dir of its own."""
    from dataops.config import reset_settings
    from dataops.storage import get_store

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATAOPS_DATABASE_URL", _console_server.database_url)
        mp.setenv("DATAOPS_DATA_DIR", str(tmp_path_factory.mktemp("performance-data")))
        reset_settings()
        get_store.cache_clear()
        try:
            with _console_server.session_factory() as session:
                build(session)
                session.commit()
        finally:
            reset_settings()
            get_store.cache_clear()


@pytest.fixture
def wanted(_seeded: None, console: Console) -> Callable[[bool], dict[str, dict[str, Any]]]:
    def compute(by_vendor: bool) -> dict[str, dict[str, Any]]:
        with console.session_factory() as session:
            return expected(session, by_vendor)

    return compute


def _first_number(text: str) -> float | None:
    found = _NUMBER.search(text)
    return (
        None
        if found is None or text.strip().startswith("—")
        else float(found.group().replace(",", ""))
    )


def _shown(page: Any) -> dict[str, dict[str, str]]:
    """Each table row's cells by field, as the browser renders them."""
    rows: dict[str, dict[str, str]] = {}
    for row in page.locator("#performance tbody tr[data-name]").all():
        name = row.get_attribute("data-name")
        cells = row.locator("td[data-field]").all()
        rows[name] = {c.get_attribute("data-field"): c.inner_text() for c in cells}
    return rows


def _check_row(shown: dict[str, str], numbers: dict[str, Any]) -> None:
    """The page rounds: counts exactly, per day and medians to 0.01, shares to 0.1 %, kappa
    to 0.001; the figures in brackets are the counts they are taken over."""
    assert _first_number(shown["answers"]) == numbers["answers"]
    for field, scale, tolerance in (
        ("answers_per_day", 1, 0.005),
        ("median_lead_time_s", 1, 0.005),
        ("median_turnaround_h", 1, 0.005),
        ("late_share", 100, 0.05),
        ("gold_accuracy", 100, 0.05),
        ("kappa", 1, 0.0005),
        ("first_pass_acceptance", 100, 0.05),
        ("rework_rate", 100, 0.05),
    ):
        value = _first_number(shown[field])
        if numbers[field] is None:
            assert value is None, field
        else:
            assert value == pytest.approx(numbers[field] * scale, abs=tolerance + 1e-9), field
    if numbers["gold_answers"]:
        low, high = re.findall(r"([\d.]+) %", shown["gold_accuracy"])[1:3]
        assert float(low) == pytest.approx(100 * numbers["gold_ci_low"], abs=0.05 + 1e-9)
        assert float(high) == pytest.approx(100 * numbers["gold_ci_high"], abs=0.05 + 1e-9)
        assert f"n={numbers['gold_answers']}" in shown["gold_accuracy"]
    if numbers["kappa_pairs"]:
        assert f"({numbers['kappa_pairs']:,})" in shown["kappa"]


def test_the_tables_show_the_independently_computed_numbers(
    page: Any, sign_in: SignIn, axe_violations: Axe, wanted: Callable[[bool], Any]
) -> None:
    sign_in(page, "labeling_ops")
    page.goto(f"/console/annotators?{PERIOD}")
    people = wanted(False)
    shown = _shown(page)
    assert sorted(shown) == sorted(people)
    for name, numbers in people.items():
        _check_row(shown[name], numbers)
    assert axe_violations(page) == []
    assert page.csp_errors == []

    page.get_by_role("link", name="Per vendor").click()
    page.wait_for_url(re.compile(r"/console/vendors\?"))
    firms = wanted(True)
    shown = _shown(page)
    assert sorted(shown) == sorted(firms)
    for name, numbers in firms.items():
        _check_row(shown[name], numbers)
    assert axe_violations(page) == []


def test_period_picker_and_sorting_links(
    page: Any, sign_in: SignIn, wanted: Callable[[bool], Any]
) -> None:
    sign_in(page, "auditor")
    page.goto("/console/annotators")
    assert (
        page.get_by_role("navigation", name="Main")
        .get_by_role("link", name="Annotators")
        .get_attribute("aria-current")
        == "page"
    )
    page.get_by_label("From (UTC, included)").fill("2026-11-01")
    page.get_by_label("Until (UTC, not included)").fill("2026-11-15")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"since=2026-11-01"))
    people = wanted(False)
    assert sorted(_shown(page)) == sorted(people)

    page.locator("#performance thead").get_by_role("link", name=re.compile("^Answers$")).click()
    page.wait_for_url(re.compile(r"sort=answers&"))
    order = [r.get_attribute("data-name") for r in page.locator("#performance tbody tr").all()]
    by_answers = sorted(people, key=lambda n: (-people[n]["answers"], n.casefold()))
    assert order == by_answers
    header = page.locator("#performance thead th[aria-sort]")
    assert header.get_attribute("aria-sort") == "descending"


def test_csv_download_holds_the_same_numbers(
    page: Any, sign_in: SignIn, wanted: Callable[[bool], Any], tmp_path: Path
) -> None:
    sign_in(page, "scientist")
    page.goto(f"/console/vendors?{PERIOD}")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").click()
    download = info.value
    assert download.suggested_filename == "vendor-performance-20261101-20261115.csv"
    target = tmp_path / "vendors.csv"
    download.save_as(target)
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(target.read_text()))}
    firms = wanted(True)
    assert sorted(rows) == sorted(firms)
    for name, numbers in firms.items():
        for field, value in numbers.items():
            text = rows[name][field]
            if value is None:
                assert text == "", field
            else:
                assert float(text) == pytest.approx(value, rel=1e-9, abs=1e-9), field


@pytest.mark.parametrize("vendor", ["vendor_a", "vendor_b"])
@pytest.mark.usefixtures("_seeded")
def test_vendors_cannot_reach_these_pages(
    page: Any, sign_in: SignIn, axe_violations: Axe, vendor: str
) -> None:
    sign_in(page, vendor)
    nav = page.get_by_role("navigation", name="Main").inner_text()
    assert "Annotators" not in nav and "Vendors" not in nav
    for path in ("/console/annotators", "/console/vendors"):
        answer = page.goto(f"{path}?{PERIOD}")
        assert answer.status == 403, path
        assert "acme" not in page.content() and "a1" not in page.locator("main").inner_text()
    assert axe_violations(page) == []
    for path in ("/console/annotators.csv", "/console/vendors.csv"):
        assert page.request.get(path).status == 403
