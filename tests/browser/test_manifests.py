"""Manifests in Chromium: the list, a datasheet, verification and a diff that finds a leak."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from tests.browser.conftest import Console

SignIn = Callable[[Any, str], None]
Axe = Callable[[Any], list[dict[str, Any]]]


@pytest.fixture(scope="module")
def manifests(_console_server: Console) -> tuple[str, str]:
    """Two manifests of the console's four images, drawn with different seeds."""
    from dataops.catalog.models import Image
    from dataops.config import reset_settings
    from dataops.db import dispose_engines, session_scope
    from dataops.labeling.models import ACCEPTED
    from dataops.labeling.service import add_label_version
    from dataops.manifests.create import create_manifest
    from dataops.manifests.schemas import ManifestRequest

    assert _console_server.log is not None
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATAOPS_DATABASE_URL", _console_server.database_url)
        # the server's store, so that it reads the bodies and datasheets written here
        mp.setenv("DATAOPS_DATA_DIR", str(_console_server.log.parent / "data"))
        reset_settings()
        try:
            with session_scope() as s:
                ids = list(s.scalars(select(Image.id).order_by(Image.id)))
                for n, image_id in enumerate(ids):
                    add_label_version(
                        s,
                        image_id=image_id,
                        payload={"class": "hat" if n % 2 else "shirt"},
                        source="csv",
                        source_id=f"m-{image_id}",
                        status=ACCEPTED,
                    )
            for name, seed in (("wear-v1", 1), ("wear-v2", 2)):
                with session_scope() as s:
                    request = ManifestRequest(name=name, splits="train=0.5,test=0.5", seed=seed)
                    create_manifest(s, request, actor="test")
        finally:
            dispose_engines()
            reset_settings()
    return "wear-v1", "wear-v2"


def test_list_datasheet_verify_and_diff(
    page: Any, console: Console, sign_in: SignIn, axe_violations: Axe, manifests: tuple[str, str]
) -> None:
    first, second = manifests
    sign_in(page, "auditor")
    page.goto("/console/manifests")
    assert page.locator("table tbody tr").count() == 2
    assert axe_violations(page) == []
    page.get_by_role("link", name=first).click()
    assert page.get_by_role("heading", level=1).inner_text() == f"Manifest {first}"
    assert page.get_by_role("heading", name="Composition").count() == 1
    assert axe_violations(page) == []
    page.get_by_role("button", name="Verify every file and image").click()
    assert "all 4 images" in page.locator("#verify-result").inner_text()
    assert axe_violations(page) == []
    page.goto("/console/manifests/diff")
    page.get_by_label("From").fill(first)
    page.get_by_label("To").fill(second)
    page.get_by_role("button", name="Compare").click()
    verdict = page.locator("#diff-leak").inner_text()
    # a new seed redraws the splits: with four images in two halves some image moves or none
    # does; the page must say which, and agree with the service
    from dataops.manifests.diff import diff_manifests

    with console.session_factory() as session:
        report = diff_manifests(session, first, second)
    assert verdict.startswith("Leak") == report.leak
    assert axe_violations(page) == []
