"""The performance report as CSV: one header row of field names, then one row per annotator
or vendor; empty cells where a number is undefined, no cell a spreadsheet would evaluate."""

from __future__ import annotations

import csv
import io

from dataops.performance.schemas import PerformanceReport, PerformanceRow

COLUMNS: tuple[str, ...] = tuple(PerformanceRow.model_fields)


def filename(report: PerformanceReport) -> str:
    """``<group>-performance-<since>-<until>.csv`` with dates (UTC)."""
    return f"{report.group}-performance-{report.since:%Y%m%d}-{report.until:%Y%m%d}.csv"


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """Empty for a missing number; a text that a spreadsheet would run as a formula (an
    annotator's name comes from Label Studio) is quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def to_csv(report: PerformanceReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in report.rows:
        values = row.model_dump()
        writer.writerow([_cell(values[c]) for c in COLUMNS])
    return out.getvalue()
