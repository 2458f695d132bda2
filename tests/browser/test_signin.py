"""Sign-in, sign-out, expiry, CSRF, CSP and cookie flags, driven in Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from dataops.auth import service as auth_service
from dataops.auth.models import User
from dataops.console.headers import CSP
from dataops.console.models import ConsoleSession
from dataops.db import utcnow
from tests.browser.conftest import Console

SignIn = Callable[[Any, str], None]


def _sessions_of(console: Console, role: str) -> int:
    with console.session_factory() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(ConsoleSession)
                .join(User, User.id == ConsoleSession.user_id)
                .where(User.name == console.users[role])
            )
            or 0
        )


def _session_cookie(page: Any) -> dict[str, Any]:
    cookies = [c for c in page.context.cookies() if c["name"] == "dataops_console"]
    assert len(cookies) == 1, page.context.cookies()
    return dict(cookies[0])


def test_the_root_leads_a_browser_to_sign_in(page: Any) -> None:
    page.goto("/")
    assert page.url.endswith("/console/sign-in")
    assert page.get_by_role("heading", level=1).inner_text() == "Sign in to the dataops console"


def test_sign_in_shows_who_is_signed_in_and_sign_out_ends_the_session(
    page: Any, console: Console, sign_in: SignIn
) -> None:
    before = _sessions_of(console, "auditor")
    sign_in(page, "auditor")
    assert page.url.endswith("/console/")
    header = page.get_by_role("banner")
    assert console.users["auditor"] in header.inner_text()
    assert "auditor" in header.locator(".badge-role").inner_text()
    assert _sessions_of(console, "auditor") == before + 1

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/console/sign-in"))
    assert page.get_by_role("status").inner_text() == "You are signed out."
    assert _sessions_of(console, "auditor") == before
    assert not [c for c in page.context.cookies() if c["name"] == "dataops_console"]
    page.goto("/console/")
    assert "/console/sign-in" in page.url


def test_a_wrong_token_is_refused_with_a_clear_message(page: Any, console: Console) -> None:
    page.goto("/console/sign-in")
    page.get_by_label("API token").fill("dok_000000000000_" + "x" * 43)
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    assert "not accepted" in alert.inner_text()
    assert "invalid, expired or revoked" in alert.inner_text()
    assert page.url.endswith("/console/sign-in")
    assert page.get_by_label("API token").get_attribute("aria-invalid") == "true"
    assert not [c for c in page.context.cookies() if c["name"] == "dataops_console"]


def test_sign_in_returns_to_the_page_asked_for_and_never_to_another_site(
    page: Any, console: Console
) -> None:
    page.goto("/console/?from=bookmark")
    assert "next=%2Fconsole%2F%3Ffrom%3Dbookmark" in page.url
    page.get_by_label("API token").fill(console.tokens["scientist"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/console/\?from=bookmark$"))

    page.context.clear_cookies()
    for target in ("https://evil.example/", "//evil.example/console/", "/v1/images"):
        page.goto(f"/console/sign-in?next={target}")
        page.get_by_label("API token").fill(console.tokens["scientist"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/console/$"))
        assert page.url == f"{console.url}/console/"
        page.context.clear_cookies()


@pytest.mark.parametrize(
    "expire",
    [
        pytest.param({"expires_at": timedelta(seconds=-1)}, id="absolute"),
        pytest.param({"last_seen_at": timedelta(hours=-13)}, id="idle-12h"),
    ],
)
def test_a_session_past_its_expiry_goes_back_to_sign_in(
    page: Any, console: Console, sign_in: SignIn, expire: dict[str, timedelta]
) -> None:
    sign_in(page, "labeling_ops")
    page.goto("/console/")
    assert page.url.endswith("/console/")
    user_id = _user_id(console, "labeling_ops")
    with console.session_factory.begin() as session:
        session.execute(
            update(ConsoleSession)
            .where(ConsoleSession.user_id == user_id)
            .values({name: utcnow() + delta for name, delta in expire.items()})
        )
    page.goto("/console/")
    assert "/console/sign-in" in page.url
    assert page.get_by_label("API token").is_visible()


def test_revoking_the_token_ends_its_console_sessions(page: Any, console: Console) -> None:
    from tests.support.api import create_user_token

    token = create_user_token("scientist", expires_days=1)
    page.goto("/console/sign-in")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/console/$"))
    with console.session_factory.begin() as session:
        auth_service.revoke_token(session, token.split("_")[1], actor="test")
    page.goto("/console/")
    assert "/console/sign-in" in page.url


def _user_id(console: Console, role: str) -> int:
    with console.session_factory() as session:
        found = session.scalar(select(User.id).where(User.name == console.users[role]))
        assert found is not None
        return found


@pytest.mark.parametrize(
    ("form", "headers"),
    [
        pytest.param({}, {}, id="no-token"),
        pytest.param({"csrf_token": "0" * 64}, {}, id="wrong-token"),
        pytest.param(None, {"Origin": "https://evil.example"}, id="other-origin"),
    ],
)
def test_a_post_without_this_sessions_csrf_token_is_refused_and_changes_nothing(
    page: Any,
    console: Console,
    sign_in: SignIn,
    form: dict[str, str] | None,
    headers: dict[str, str],
) -> None:
    sign_in(page, "admin")
    if form is None:  # the right token, sent from another site
        token = page.locator("input[name=csrf_token]").first.get_attribute("value")
        form = {"csrf_token": token}
    sessions_before = _sessions_of(console, "admin")
    response = page.request.post("/console/sign-out", form=form, headers=headers, max_redirects=0)
    assert response.status == 403
    assert "text/html" in response.headers["content-type"]
    assert "nothing was changed" in response.text()
    assert _sessions_of(console, "admin") == sessions_before
    page.goto("/console/")
    assert page.url.endswith("/console/"), "still signed in"


def test_cookie_is_httponly_and_samesite_strict(page: Any, sign_in: SignIn) -> None:
    sign_in(page, "auditor")
    cookie = _session_cookie(page)
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/console"
    assert cookie["secure"] is False  # plain http here; https sets Secure (unit-tested)
    assert page.evaluate("() => document.cookie") == "", "script can read the session cookie"


_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
_EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
_STYLE = re.compile(r"<style\b|<[^>]+\sstyle\s*=", re.IGNORECASE)


@pytest.mark.parametrize("path", ["/console/sign-in", "/console/", "/console/no-such-page"])
def test_pages_carry_the_csp_and_no_inline_script_or_style(
    page: Any, sign_in: SignIn, path: str
) -> None:
    sign_in(page, "admin")
    response = page.request.get(path)
    assert response.headers.get("content-security-policy") == CSP, (response.url, response.headers)
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    html = response.text()
    assert '<html lang="en">' in html
    assert not _INLINE_SCRIPT.search(html), _INLINE_SCRIPT.search(html)
    assert not _EVENT_HANDLER.search(html), _EVENT_HANDLER.search(html)
    assert not _STYLE.search(html), _STYLE.search(html)
    page.goto(path)
    assert page.csp_errors == []


def test_sign_in_and_overview_pass_axe(
    page: Any, sign_in: SignIn, axe_violations: Callable[[Any], list[dict[str, Any]]]
) -> None:
    page.goto("/console/sign-in")
    assert axe_violations(page) == []
    sign_in(page, "vendor_a")
    assert axe_violations(page) == []


ALL_PAGES = [
    "Overview",
    "Queues",
    "Requests",
    "Annotators",
    "Vendors",
    "Audits",
    "Duplicates",
    "Manifests",
    "Jobs",
]


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("admin", ALL_PAGES),
        ("scientist", ALL_PAGES),
        ("labeling_ops", ALL_PAGES),
        ("auditor", [p for p in ALL_PAGES if p != "Requests"]),
        ("vendor_a", ["Overview", "Queues"]),
    ],
)
def test_each_role_sees_its_own_navigation(
    page: Any, sign_in: SignIn, role: str, expected: list[str]
) -> None:
    from dataops.console.render import NAV
    from dataops.console.router import served_get_paths

    served = {entry.label for entry in NAV if entry.path in served_get_paths()}
    sign_in(page, role)
    shown = page.get_by_role("navigation", name="Main").get_by_role("link").all_inner_texts()
    assert shown == [label for label in expected if label in served]
