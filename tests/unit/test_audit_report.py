"""HTML audit report: content, escaping, and how it looks in a real browser."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataops.audits.agreement import (
    agreement_summary,
    confusion_matrix,
    pairwise_kappa,
    per_annotator_agreement,
    per_class_agreement,
)
from dataops.audits.ratings import Ratings
from dataops.audits.report import (
    AuditReport,
    GateResult,
    heatmap_from_confusion,
    heatmap_from_pairwise,
)
from dataops.audits.report_html import render_heatmap_png, render_html

EVIL = "<script>alert('x')</script>"


def _report(accepted: bool) -> AuditReport:
    rng = np.random.default_rng(0)
    annotators = ["alice", "bob", EVIL, "$x^2$"]
    classes = ["cat", "dog", "bird", "<b>fish</b>"]
    records = []
    for i in range(120):
        truth = int(rng.integers(0, 4))
        for a in annotators:
            label = truth if rng.random() < 0.8 else int(rng.integers(0, 4))
            records.append((f"img{i}", a, classes[label]))
    ratings = Ratings.from_records(records)
    return AuditReport(
        title="Audit of batch <42>",
        batch="42",
        generated_at="2026-11-26T10:00:00Z",
        summary=agreement_summary(ratings, n_resamples=100),
        gate=GateResult(
            gate=0.95,
            pass_rate=0.97 if accepted else 0.81,
            n_items=120,
            n_passed=116 if accepted else 97,
            accepted=accepted,
        ),
        pairwise=heatmap_from_pairwise(pairwise_kappa(ratings)),
        confusion=heatmap_from_confusion(confusion_matrix(ratings, "alice", "bob")),
        annotators=per_annotator_agreement(ratings),
        classes=per_class_agreement(ratings),
        vendors=[{"vendor": "Acme & Co", "n_items": 120, "pass_rate": 0.81}],
        disputed=[
            {"item": "img1", "labels": {"alice": "cat", EVIL: "dog"}, "majority": None},
            {"item": "img2", "labels": {"alice": "cat", "bob": "dog"}, "majority": "cat"},
        ],
    )


def _thumbnail() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _embedded_pngs(page: str) -> list[Image.Image]:
    uris = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    return [Image.open(io.BytesIO(base64.b64decode(u))) for u in uris]


def test_report_embeds_heatmaps_and_decision() -> None:
    page = render_html(_report(accepted=False))
    images = _embedded_pngs(page)
    assert len(images) == 2
    for image in images:
        image.load()
        assert image.width > 200
        assert image.height > 200
    assert "REJECTED" in page
    assert "ACCEPTED" not in page
    assert "81.0% &lt; gate 95.0%" in page
    assert "Per vendor" in page
    assert "Acme &amp; Co" in page
    assert "ACCEPTED" in render_html(_report(accepted=True))


def test_report_escapes_user_strings() -> None:
    page = render_html(_report(accepted=True))
    assert EVIL not in page
    assert "<b>fish</b>" not in page
    assert "&lt;script&gt;" in page
    assert "Audit of batch &lt;42&gt;" in page
    assert page.count("<script") == 0


def test_report_without_gate_or_optional_sections() -> None:
    ratings = Ratings.from_records([(1, "a", "x"), (1, "b", "y"), (2, "a", "x"), (2, "b", "x")])
    page = render_html(AuditReport(title="t", summary=agreement_summary(ratings)))
    assert "NO GATE" in page
    assert "<img" not in page
    assert "Per annotator" not in page


def test_thumbnails_are_embedded_only_when_they_are_images() -> None:
    report = _report(accepted=True)
    page = render_html(report, {"img1": _thumbnail(), "img2": b"#!/bin/sh\nrm -rf /\n"})
    assert len(_embedded_pngs(page)) == 3
    assert "no thumbnail" in page
    assert "rm -rf" not in page


def test_heatmap_png_handles_missing_cells_and_math_text() -> None:
    png = render_heatmap_png(
        {
            "title": "$\\frac{a}{b}$ kappa",
            "row_labels": ["$a$", "b_1"],
            "col_labels": ["$a$", "b_1"],
            "values": [[1.0, None], [None, 1.0]],
        }
    )
    assert png.startswith(b"\x89PNG")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("headless Chromium is required in CI: apt-get install -y chromium")
    pytest.skip("headless Chromium is not installed (apt-get install -y chromium)")


@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    page = tmp_path / "report.html"
    page.write_text(render_html(_report(accepted=False), {"img1": _thumbnail()}), "utf-8")
    shot = tmp_path / "shot.png"
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert shot.exists(), done.stderr.decode(errors="replace")[-2000:]
    assert shot.stat().st_size > 20_000
    with Image.open(shot) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    assert rgb.shape[:2] == (2000, 1280)
    assert rgb.std() > 10, "blank page"
    # The REJECTED banner's red border and text must be visible near the top.
    top = rgb[:400]
    red = (top[..., 0] > 180) & (top[..., 1] < 90) & (top[..., 2] < 100)
    assert red.sum() > 1000


def test_report_shows_ac1_with_its_interval_and_the_items_used() -> None:
    records = [(i, "a", "x") for i in range(6)] + [
        (i, "b", "x" if i < 4 else "y") for i in range(5)
    ]
    summary = agreement_summary(Ratings.from_records(records), weights="linear")
    page = render_html(AuditReport(title="t", summary=summary))
    assert "Gwet&#x27;s AC1" in page
    assert "Weighted kappa (linear)" in page
    assert "stays stable when one class dominates" in page  # its plain-language meaning
    se = summary["standard_errors"]["gwet_ac1"]["se"]
    assert f"{se:.3f}" in page
    assert "5 were rated at least twice" in page
