"""Queues and batches in Chromium: staff read progress numbers counted by hand
(tests/support/progress_world.py); a vendor sees only its own queue, gets the 404 page for
another vendor's queue and batch, and never reads a gold or overlap word or number."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.conftest import Console
from tests.support import progress_world as world

SignIn = Callable[[Any, str], None]
Axe = Callable[[Any], list[dict[str, Any]]]

_built: dict[str, tuple[world.ProgressWorld, str]] = {}


@pytest.fixture
def scenario(console: Console) -> tuple[world.ProgressWorld, str]:
    """The hand-counted world on this module's catalog, and a token of vendor acme's user."""
    if console.url not in _built:
        from tests.support.api import create_user_token

        built = world.build()
        token = create_user_token("vendor", vendor="acme", name="acme-viewer", expires_days=1)
        _built[console.url] = (built, token)
    return _built[console.url]


def _sign_in_with(page: Any, token: str) -> None:
    page.goto("/console/sign-in")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/console/sign-in" not in url)


def _row(page: Any, name: str) -> dict[str, str]:
    """The queue table's row named `name`, by column header."""
    headers = page.locator("table thead th").all_inner_texts()
    row = page.locator("table tbody tr", has=page.locator("th a", has_text=name))
    assert row.count() == 1, name
    cells = [row.locator("th").inner_text(), *row.locator("td").all_inner_texts()]
    return dict(zip(headers, cells, strict=True))


def _stats(page: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for stat in page.locator("[data-stat]").all():
        found[str(stat.get_attribute("data-stat"))] = stat.inner_text()
    return found


def test_staff_see_progress_numbers(
    page: Any,
    console: Console,
    scenario: tuple[world.ProgressWorld, str],
    sign_in: SignIn,
    axe_violations: Axe,
) -> None:
    w, _ = scenario
    sign_in(page, "labeling_ops")
    assert page.goto("/console/queues").status == 200
    row = _row(page, world.ACME_QUEUE)
    assert row["Vendor"] == "acme"
    assert row["Guideline"] == "helmets:1"
    assert "overdue" in row["Next due"]
    expected = {
        "Items": world.ACME["items"],
        "Sent": world.ACME["sent"],
        "Answered": world.ACME["answered"],
        "Accepted": world.ACME["accepted"],
        "Rejected": world.ACME["rejected"],
        "Overlap items": world.ACME["overlap_items"],
        "Gold items": world.ACME["gold_items"],
        "Open batches": 3,
        "Recent answers": sum(world.ACME_THROUGHPUT_7),
    }
    assert {k: row[k] for k in expected} == {k: str(v) for k, v in expected.items()}
    assert axe_violations(page) == []

    page.get_by_role("link", name=world.ACME_QUEUE).click()
    page.wait_for_url(f"**/console/queues/{w.acme_queue}")
    assert _stats(page) == {k: str(v) for k, v in world.ACME.items()}
    days = page.locator("section:has(#throughput-heading) tbody tr")
    assert days.count() == 14
    last = [days.nth(i).locator("td").first.inner_text() for i in range(11, 14)]
    assert last == [str(n) for n in world.ACME_THROUGHPUT]
    batch_links = page.locator("section:has(#batches-heading) tbody th a").all_inner_texts()
    assert batch_links == [f"Batch {w.a3}", f"Batch {w.a2}", f"Batch {w.a1}"]
    assert axe_violations(page) == []
    assert page.csp_errors == []

    page.get_by_role("link", name=f"Batch {w.a1}").click()
    page.wait_for_url(f"**/console/batches/{w.a1}")
    assert _stats(page) == {k: str(v) for k, v in world.A1.items() if k != "answers"}
    tiles = page.locator("[data-item]")
    assert tiles.count() == 6
    assert "gold" in tiles.nth(0).inner_text()
    assert "overlap" in tiles.nth(1).inner_text()
    assert "helmet (80.0 %)" in tiles.nth(0).inner_text()
    assert "ann2@acme" in tiles.nth(1).inner_text()
    loaded = page.evaluate(
        "() => [...document.querySelectorAll('[data-item] img')].every(i => i.naturalWidth > 0"
        " || i.complete)"
    )
    assert loaded
    assert axe_violations(page) == []


def test_vendor_sees_only_its_own_queue_without_gold_or_overlap(
    page: Any, console: Console, scenario: tuple[world.ProgressWorld, str], axe_violations: Axe
) -> None:
    w, token = scenario
    _sign_in_with(page, token)
    assert page.goto("/console/queues").status == 200
    names = page.locator("table tbody th a").all_inner_texts()
    assert names == [world.ACME_QUEUE]
    row = _row(page, world.ACME_QUEUE)
    assert row["Sent"] == str(world.ACME["sent"])
    assert "Gold items" not in row and "Overlap items" not in row
    texts = [page.locator("main").inner_text()]
    assert axe_violations(page) == []

    assert page.goto(f"/console/queues/{w.acme_queue}").status == 200
    assert "sent" in _stats(page) and "gold_items" not in _stats(page)
    texts.append(page.locator("main").inner_text())
    assert axe_violations(page) == []

    assert page.goto(f"/console/batches/{w.a1}").status == 200
    assert page.locator("[data-item]").count() == 6
    texts.append(page.locator("main").inner_text())
    assert axe_violations(page) == []
    for text in texts:
        assert "gold" not in text.lower() and "overlap" not in text.lower()
        assert "globex" not in text

    for path in (
        f"/console/queues/{w.globex_queue}",
        f"/console/queues/{world.GLOBEX_QUEUE}",
        f"/console/queues/{console.queues['vendor_b']}",
        f"/console/batches/{w.b1}",
        f"/console/batches/{w.a2}",  # a draft: not the vendor's work yet
    ):
        response = page.goto(path)
        assert response.status == 404, path
        if world.GLOBEX_QUEUE not in path:  # a name the vendor typed is echoed, nothing else
            assert "globex" not in page.locator("main").inner_text()
