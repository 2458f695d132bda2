"""Every console page a staff member or a vendor can reach by following links passes axe
(no serious or critical violations), loads without CSP refusals and answers 200; a vendor's
crawl never reaches a staff-only page nor shows another vendor's name."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urldefrag, urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.console.render import NAV
from dataops.console.router import served_get_paths
from tests.browser.conftest import Console

MAX_PAGES = 60
PER_SHAPE = 3  # /console/batches/1, /2, /3: enough of one kind of page
SKIP = ("/console/sign-out", "/console/sign-in", "/console/static/")
DOWNLOAD = re.compile(r"(\.csv|\.json|\.zip|\.png|/download)(\?|$)|[?&]format=(csv|json)")
STAFF_ONLY = sorted(
    {entry.path for entry in NAV if "vendor" not in entry.roles}
    | {"/console/annotators", "/console/vendors", "/console/audits"}
)

SignIn = Callable[[Any, str], None]
Axe = Callable[[Any], list[dict[str, Any]]]


@dataclass
class Crawl:
    status: dict[str, int] = field(default_factory=dict)
    violations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    csp_errors: dict[str, list[str]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)


def _shape(path: str) -> str:
    return re.sub(r"\d+", "N", path.split("?", 1)[0])


def _links(page: Any, origin: str) -> list[str]:
    hrefs: list[str] = page.eval_on_selector_all(
        "a[href]:not([download])", "links => links.map(a => a.href)"
    )
    found = []
    for href in hrefs:
        url, _fragment = urldefrag(href)
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != origin:
            continue
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        if not parts.path.startswith("/console/") or parts.path.startswith(SKIP):
            continue
        if DOWNLOAD.search(target):
            continue
        found.append(target)
    return found


def crawl(page: Any, origin: str, axe: Axe, start: str = "/console/") -> Crawl:
    result = Crawl()
    pending = [start]
    shapes: dict[str, int] = {}
    while pending and len(result.status) < MAX_PAGES:
        # New kinds of page first, so pagination cannot use up the budget.
        pending.sort(key=lambda p: shapes.get(_shape(p), 0))
        path = pending.pop(0)
        if path in result.status or shapes.get(_shape(path), 0) >= PER_SHAPE:
            continue
        shapes[_shape(path)] = shapes.get(_shape(path), 0) + 1
        page.csp_errors.clear()
        response = page.goto(path)
        result.status[path] = response.status if response is not None else 0
        result.texts[path] = page.content()
        found = axe(page)
        if found:
            result.violations[path] = found
        if page.csp_errors:
            result.csp_errors[path] = list(page.csp_errors)
        pending += [link for link in _links(page, origin) if link not in result.status]
    return result


_INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|<[^>]+\s(?:on[a-z]+|style)\s*=", re.IGNORECASE
)


def _assert_clean(result: Crawl, console: Console) -> None:
    broken = {p: s for p, s in result.status.items() if s != 200}
    log = console.log.read_text()[-4000:] if console.log else ""
    assert not broken, f"links that do not answer 200: {broken}\nserver log:\n{log}"
    assert not result.violations, f"axe (serious/critical): {result.violations}"
    assert not result.csp_errors, f"refused by the CSP: {result.csp_errors}"
    # Console pages hold no inline code (standalone report files keep their own CSP).
    inline = {
        p: m.group(0)
        for p, text in result.texts.items()
        if not urlsplit(p).path.endswith(".html") and (m := _INLINE.search(text))
    }
    assert not inline, f"inline script or style: {inline}"


def _manifest(session: Session, name: str, splits: dict[int, str]) -> None:
    """A manifest's rows as the manifest job writes them (no body files)."""
    from dataops.catalog.models import Image
    from dataops.manifests.models import Manifest, ManifestRow

    counts = {split: list(splits.values()).count(split) for split in set(splits.values())}
    content = "sha256:" + "c" * 64
    session.add(
        Manifest(
            name=name,
            content_hash=content,
            seed=0,
            splits={"spec": "train=0.75,test=0.25", "names": ["train", "test"]},
            selection={},
            row_count=len(splits),
            split_counts=counts,
            body_key=f"manifests/{name}/body.jsonl",
            parquet_key=f"manifests/{name}/body.parquet",
        )
    )
    for image_id, split in splits.items():
        image = session.get(Image, image_id)
        assert image is not None
        session.add(
            ManifestRow(content_hash=content, sha256=image.sha256, image_id=image_id, split=split)
        )
    session.flush()


@pytest.fixture(scope="module", autouse=True)
def _seeded(_console_server: Console) -> None:
    """Rows for every page group: a labeled and audited queue with annotators (two other
    vendors), an audited batch in vendor A's queue, duplicate groups and a manifest."""
    from dataops.catalog.models import Image
    from dataops.labeling.models import Queue
    from tests.support import performance
    from tests.support.audits import audited_batch
    from tests.support.duplicates import make_groups

    with _console_server.settings(), _console_server.session_factory.begin() as session:
        performance.build(session)
        images = list(session.scalars(select(Image.id).order_by(Image.id)))
        vendor_a = session.get(Queue, _console_server.queues["vendor_a"])
        assert vendor_a is not None
        audited_batch(session, images[-4:], name="vendor-a-team", vendor_id=vendor_a.vendor_id)
        make_groups(session, [images[:3], images[3:5]])
        _manifest(session, "crawl-set", {i: ("train" if i % 4 else "test") for i in images[:12]})


@pytest.mark.slow
def test_a_staff_crawl_passes_axe_on_every_page(
    page: Any, console: Console, sign_in: SignIn, axe_violations: Axe
) -> None:
    sign_in(page, "admin")
    result = crawl(page, console.url, axe_violations)
    print(f"admin crawl: {len(result.status)} pages: {sorted(result.status)}")
    assert "/console/" in result.status
    _assert_clean(result, console)


@pytest.mark.slow
def test_a_vendor_crawl_passes_axe_and_never_reaches_staff_pages_or_other_vendors(
    page: Any, console: Console, sign_in: SignIn, axe_violations: Axe
) -> None:
    sign_in(page, "vendor_a")
    result = crawl(page, console.url, axe_violations)
    print(f"vendor crawl: {len(result.status)} pages: {sorted(result.status)}")
    _assert_clean(result, console)
    reached = [p for p in result.status if any(p == s or p.startswith(f"{s}/") for s in STAFF_ONLY)]
    assert not reached, f"a vendor reached staff-only pages: {reached}"
    others = re.compile(r"\b(vendor-b|acme|beta)\b")
    leaks = [p for p, text in result.texts.items() if others.search(text)]
    assert not leaks, f"another vendor's name shown on {leaks}"

    # Typed in by hand: every staff-only page that exists refuses the vendor.
    served = served_get_paths()
    for path in STAFF_ONLY:
        if path in served:
            response = page.request.get(path, max_redirects=0)
            assert response.status == 403, (path, response.status)
