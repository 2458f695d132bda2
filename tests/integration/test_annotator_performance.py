"""Annotator and vendor performance on real catalogs (SQLite and PostgreSQL): every number of
the report against an independent computation over the raw rows (numpy, scikit-learn's
cohen_kappa_score, statsmodels' Wilson interval)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest

from dataops.db import session_scope
from dataops.labeling.models import Annotator
from dataops.performance import export
from dataops.performance.schemas import SORT_KEYS, PerformanceRequest
from dataops.performance.service import NO_VENDOR, PeriodError, performance_report
from tests.support.performance import SINCE, T0, UNTIL, build, expected


def _check(actual: dict[str, Any], wanted: dict[str, Any]) -> None:
    for key, value in wanted.items():
        if value is None:
            assert actual[key] is None, key
        else:
            assert actual[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


@pytest.fixture
def scenario(catalog: str) -> str:
    with session_scope() as session:
        build(session)
    return catalog


@pytest.mark.parametrize("group", ["annotator", "vendor"])
def test_every_number_matches_an_independent_computation(scenario: str, group: str) -> None:
    request = PerformanceRequest(since=SINCE, until=UNTIL, group=group)  # type: ignore[arg-type]
    with session_scope() as session:
        report = performance_report(session, request)
        wanted = expected(session, group == "vendor")
    rows = {row.name: row.model_dump() for row in report.rows}
    assert sorted(rows) == sorted(wanted)
    assert report.days == 14
    for name, numbers in wanted.items():
        _check(rows[name], numbers)
    # The scenario exercises every number: none of them is vacuous.
    total = {k: sum(r[k] or 0 for r in wanted.values()) for k in next(iter(wanted.values()))}
    for key in (
        "gold_answers",
        "kappa_pairs",
        "audited_answers",
        "accepted_answers",
        "reworked_answers",
        "late_answers",
    ):
        assert total[key] > 0, key
    if group == "annotator":
        assert rows["a1"]["vendor"] == "acme" and rows["solo"]["vendor"] is None
    else:
        assert NO_VENDOR in rows


def test_the_period_selects_answers(scenario: str) -> None:
    with session_scope() as session:
        full = performance_report(session, PerformanceRequest(since=SINCE, until=UNTIL))
        early = performance_report(
            session, PerformanceRequest(since=SINCE, until=T0 + timedelta(days=3))
        )
        later = performance_report(
            session, PerformanceRequest(since=T0 + timedelta(days=3), until=UNTIL)
        )
    total = sum(r.answers for r in full.rows)
    assert total == sum(r.answers for r in early.rows) + sum(r.answers for r in later.rows)
    assert 0 < sum(r.answers for r in early.rows) < total


def test_sorting_puts_missing_values_last(scenario: str) -> None:
    with session_scope() as session:
        for key in SORT_KEYS:
            for descending in (False, True):
                request = PerformanceRequest(
                    since=SINCE,
                    until=UNTIL,
                    sort=key,
                    descending=descending,  # type: ignore[arg-type]
                )
                rows = performance_report(session, request).rows
                values = [getattr(r, key) for r in rows]
                present = [v for v in values if v is not None]
                assert values[: len(present)] == present
                if key == "name":
                    present = [str(v).casefold() for v in present]
                assert present == sorted(present, reverse=descending)


def test_a_period_must_not_be_empty(scenario: str) -> None:
    with session_scope() as session, pytest.raises(PeriodError) as raised:
        performance_report(session, PerformanceRequest(since=UNTIL, until=SINCE))
    assert raised.value.fields == ("since", "until")


def test_the_default_period_is_the_last_30_days(scenario: str) -> None:
    now = T0 + timedelta(days=5)
    with session_scope() as session:
        report = performance_report(session, PerformanceRequest(), now=now)
        explicit = performance_report(
            session, PerformanceRequest(since=now - timedelta(days=30), until=now)
        )
    assert (report.since, report.until) == (now - timedelta(days=30), now)
    assert report.rows == explicit.rows


def test_csv_has_the_report_rows(scenario: str) -> None:
    with session_scope() as session:
        report = performance_report(session, PerformanceRequest(since=SINCE, until=UNTIL))
    rows = list(csv.DictReader(io.StringIO(export.to_csv(report))))
    assert [r["name"] for r in rows] == [r.name for r in report.rows]
    for parsed, row in zip(rows, report.rows, strict=True):
        for column in export.COLUMNS:
            value = getattr(row, column)
            text = parsed[column]
            if value is None:
                assert text == ""
            elif isinstance(value, float):
                assert float(text) == value
            else:
                assert text == str(value)
    assert export.filename(report) == "annotator-performance-20261101-20261115.csv"


def test_an_annotator_name_never_becomes_a_spreadsheet_formula(catalog: str) -> None:
    with session_scope() as session:
        build(session)
        session.execute(
            Annotator.__table__.update().where(Annotator.name == "a1").values(name="=HYPERLINK(1)")
        )
        report = performance_report(session, PerformanceRequest(since=SINCE, until=UNTIL))
    names = [r["name"] for r in csv.DictReader(io.StringIO(export.to_csv(report)))]
    assert "'=HYPERLINK(1)" in names


def test_vendor_rows_add_up_their_annotators(scenario: str) -> None:
    with session_scope() as session:
        people = performance_report(session, PerformanceRequest(since=SINCE, until=UNTIL))
        firms = performance_report(
            session, PerformanceRequest(since=SINCE, until=UNTIL, group="vendor")
        )
    sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in people.rows:
        for key in ("answers", "gold_answers", "gold_correct", "audited_answers", "kappa_pairs"):
            sums[row.vendor or NO_VENDOR][key] += getattr(row, key)
    for row in firms.rows:
        for key, value in sums[row.name].items():
            assert getattr(row, key) == value, (row.name, key)


PARAMS = {"since": "2026-11-01", "until": "2026-11-15T00:00:00Z"}


def test_http_json_and_csv_match_the_service(scenario: str, api: Any, make_user: Any) -> None:
    token = {"Authorization": f"Bearer {make_user('auditor')}"}
    with session_scope() as session:
        report = performance_report(
            session, PerformanceRequest(since=SINCE, until=UNTIL, group="vendor")
        )
    answer = api.get(
        "/v1/annotators/performance", params={**PARAMS, "group": "vendor"}, headers=token
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == report.model_dump(mode="json")
    for path, extra in (
        ("/v1/annotators/performance.csv", {}),
        ("/v1/annotators/performance", {"format": "csv"}),
    ):
        sheet = api.get(path, params={**PARAMS, "group": "vendor", **extra}, headers=token)
        assert sheet.status_code == 200, sheet.text
        assert sheet.headers["content-type"].startswith("text/csv")
        assert (
            'filename="vendor-performance-20261101-20261115.csv"'
            in sheet.headers["content-disposition"]
        )
        assert sheet.text == export.to_csv(report)


def test_http_refuses_vendors_and_empty_periods(scenario: str, api: Any, make_user: Any) -> None:
    vendor = {"Authorization": f"Bearer {make_user('vendor', vendor='acme')}"}
    for path in ("/v1/annotators/performance", "/v1/annotators/performance.csv"):
        assert api.get(path, params=PARAMS, headers=vendor).status_code == 403
    ops = {"Authorization": f"Bearer {make_user('labeling_ops')}"}
    bad = api.get(
        "/v1/annotators/performance",
        params={"since": "2026-12-01", "until": "2026-11-01"},
        headers=ops,
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "since"
    unknown = api.get("/v1/annotators/performance", params={"group": "team"}, headers=ops)
    assert unknown.status_code == 422


def test_cli_report_matches_the_service(scenario: str, tmp_path: Any) -> None:
    from tests.support.cli import run_cli, run_json

    period = ("--since", "2026-11-01", "--until", "2026-11-15")
    data = run_json(
        "annotators", "report", *period, "--group", "vendor", "--csv", str(tmp_path / "v.csv")
    )
    with session_scope() as session:
        report = performance_report(
            session, PerformanceRequest(since=SINCE, until=UNTIL, group="vendor")
        )
    assert data == report.model_dump(mode="json")
    assert (tmp_path / "v.csv").read_bytes().decode() == export.to_csv(report)
    shown = run_cli("annotators", "report", *period, "--sort", "answers", "--descending").stdout
    assert "a1" in shown and "solo" in shown
    bad = run_cli(
        "annotators", "report", "--since", "2026-11-15", "--until", "2026-11-01", check=False
    )
    assert bad.returncode == 2
    assert "--since must be before --until" in bad.stderr
