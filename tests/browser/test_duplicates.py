"""The duplicates pages in Chromium: groups as image grids, one group, a manifest's leak
report; thumbnails load under the CSP; vendors refused."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dataops.db import session_scope
from tests.browser.conftest import Console
from tests.support.api import ingest_files, write_photo
from tests.support.duplicates import make_groups, make_manifest

SignIn = Callable[[Any, str], None]
# Photo widths never repeat within a run, so every seeded photo is a new image.
_sizes = itertools.count()


@dataclass(frozen=True)
class Seeded:
    groups: list[int]
    image_ids: list[int]
    names: list[str]
    leaky: str
    clean: str


@pytest.fixture
def seeded(console: Console, tmp_path: Path) -> Seeded:
    tag = uuid.uuid4().hex[:8]
    photos = [
        write_photo(
            tmp_path / f"dup-{tag}-{i}.jpg",
            size=(60 + next(_sizes), 40 + i),
            seed=200 + i,
            orientation=1,
        )
        for i in range(4)
    ]
    ids = ingest_files(photos)
    with session_scope() as s:
        groups = make_groups(s, [ids[0:2], ids[2:4]])
        make_manifest(s, f"leaky-{tag}", {ids[0]: "train", ids[1]: "test", ids[2]: "train"})
        make_manifest(s, f"clean-{tag}", {ids[0]: "train", ids[1]: "train"})
    return Seeded(groups, ids, [p.name for p in photos], f"leaky-{tag}", f"clean-{tag}")


def _loaded(page: Any, image: Any) -> None:
    image.scroll_into_view_if_needed()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )


def test_groups_show_as_grids_and_a_group_lists_its_members(
    page: Any,
    sign_in: SignIn,
    seeded: Seeded,
    axe_violations: Callable[[Any], list[dict[str, Any]]],
) -> None:
    sign_in(page, "scientist")
    page.goto("/console/duplicates")
    while page.locator(f"#group-{seeded.groups[0]}").count() == 0:
        page.get_by_role("link", name="Next →").click()
    section = page.locator("section").filter(has=page.locator(f"#group-{seeded.groups[0]}"))
    images = section.get_by_role("img")
    assert images.count() == 2
    first = section.get_by_role("img", name=re.compile(re.escape(seeded.names[0])))
    _loaded(page, first)
    assert "representative" in section.locator(".tile").first.inner_text()
    assert axe_violations(page) == []

    section.get_by_role("link", name=f"Group {seeded.groups[0]}").click()
    page.wait_for_url(re.compile(rf"/console/duplicates/{seeded.groups[0]}$"))
    tiles = page.locator(".tile")
    assert tiles.count() == 2
    assert [tiles.nth(i).locator("strong").inner_text() for i in range(2)] == seeded.names[:2]
    _loaded(page, page.get_by_role("img", name=re.compile(re.escape(seeded.names[1]))))
    assert axe_violations(page) == []
    assert page.csp_errors == []


def test_a_manifests_leak_report(
    page: Any,
    sign_in: SignIn,
    seeded: Seeded,
    axe_violations: Callable[[Any], list[dict[str, Any]]],
) -> None:
    sign_in(page, "auditor")
    page.goto(f"/console/manifests/{seeded.leaky}/leaks")
    assert page.locator("#total-leaks").inner_text() == "1"
    assert page.locator("#groups-checked").inner_text() == "1"  # group b has one image in it
    leak = page.locator("section").filter(has=page.locator(f"#leak-{seeded.groups[0]}"))
    assert leak.get_by_role("heading", level=3).all_inner_texts() == ["test (1)", "train (1)"]
    _loaded(page, leak.get_by_role("img").first)
    assert axe_violations(page) == []

    page.goto(f"/console/manifests/{seeded.clean}/leaks")
    assert page.locator("#total-leaks").inner_text() == "0"
    assert page.locator("#no-leaks").is_visible()
    missing = page.goto("/console/manifests/no-such-manifest/leaks")
    assert missing is not None and missing.status == 404


def test_vendors_cannot_reach_duplicates_or_thumbnails(
    page: Any, sign_in: SignIn, seeded: Seeded
) -> None:
    sign_in(page, "vendor_b")
    assert (
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Duplicates").count()
        == 0
    )
    for path in (
        "/console/duplicates",
        f"/console/duplicates/{seeded.groups[0]}",
        f"/console/manifests/{seeded.leaky}/leaks",
        f"/console/images/{seeded.image_ids[0]}/thumbnail",
    ):
        response = page.goto(path)
        assert response is not None and response.status == 403, path
