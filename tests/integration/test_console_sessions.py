"""Console sessions on both backends: what is stored, when a session ends, CSRF refusal,
cookie flags, role refusal and HTML error pages (no browser: the HTTP exchanges)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from dataops.auth import service as auth_service
from dataops.auth.errors import Unauthenticated
from dataops.auth.models import User
from dataops.config import ConsoleSettings, reset_settings
from dataops.console import sessions
from dataops.console.deps import STAFF, ConsoleVendorScope, CsrfForm, console_roles
from dataops.console.models import ConsoleSession
from dataops.db import session_scope, utcnow
from tests.support.api import MakeUser, ensure_vendor

SETTINGS = ConsoleSettings(idle_timeout=3600, absolute_timeout=4 * 3600)


def _sign_in(token: str) -> sessions.NewSession:
    with session_scope() as session:
        new = sessions.sign_in(session, token, settings=SETTINGS)
        session.expunge_all()
        return new


def _resume(session_id: str, **kwargs: object) -> sessions.ActiveSession | None:
    with session_scope() as session:
        return sessions.resume(session, session_id, settings=SETTINGS, **kwargs)  # type: ignore[arg-type]


def test_only_a_hash_of_the_session_id_is_stored(make_user: MakeUser) -> None:
    new = _sign_in(make_user("auditor"))
    with session_scope() as session:
        rows = list(session.scalars(select(ConsoleSession)))
    assert len(rows) == 1
    assert rows[0].id_hash == sessions.hash_session_id(new.session_id)
    assert new.session_id not in {rows[0].id_hash}
    assert len(new.session_id) >= 43  # 256 bits, urlsafe


def test_a_session_resumes_as_its_user(make_user: MakeUser) -> None:
    new = _sign_in(make_user("scientist", name="sci"))
    active = _resume(new.session_id)
    assert active is not None
    assert active.user.name == "sci"
    assert active.csrf_token == sessions.csrf_token_for(new.session_id)
    assert _resume("not-a-session") is None
    assert _resume("") is None


def test_a_bad_token_opens_no_session(make_user: MakeUser) -> None:
    make_user("admin")
    with session_scope() as session, pytest.raises(Unauthenticated):
        sessions.sign_in(session, "dok_000000000000_" + "a" * 43, settings=SETTINGS)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ConsoleSession)) == 0


@pytest.mark.parametrize(
    ("later", "live"),
    [
        (timedelta(minutes=59), True),
        (timedelta(minutes=61), False),  # idle past 1 h
    ],
)
def test_idle_expiry(make_user: MakeUser, later: timedelta, live: bool) -> None:
    new = _sign_in(make_user("labeling_ops"))
    assert (_resume(new.session_id, now=utcnow() + later) is not None) is live


def test_activity_keeps_a_session_alive_until_its_absolute_expiry(make_user: MakeUser) -> None:
    new = _sign_in(make_user("labeling_ops"))
    start = utcnow()
    for minutes in range(50, 4 * 60, 50):  # a request every 50 minutes
        assert _resume(new.session_id, now=start + timedelta(minutes=minutes)) is not None
    assert _resume(new.session_id, now=start + timedelta(hours=4, minutes=1)) is None
    with session_scope() as session:  # the expired row is gone
        assert session.scalar(select(func.count()).select_from(ConsoleSession)) == 0


def test_a_revoked_token_or_disabled_user_ends_the_session(make_user: MakeUser) -> None:
    token = make_user("auditor", name="aud")
    revoked = _sign_in(token)
    with session_scope() as session:
        auth_service.revoke_token(session, token.split("_")[1], actor="test")
    assert _resume(revoked.session_id) is None

    other = _sign_in(make_user("auditor", name="aud2"))
    with session_scope() as session:
        session.scalar(select(User).where(User.name == "aud2")).disabled = True  # type: ignore[union-attr]
    assert _resume(other.session_id) is None


def test_sign_out_deletes_the_row(make_user: MakeUser) -> None:
    new = _sign_in(make_user("admin"))
    with session_scope() as session:
        assert sessions.sign_out(session, new.session_id) is True
        assert sessions.sign_out(session, new.session_id) is False
    assert _resume(new.session_id) is None


# --- over HTTP -----------------------------------------------------------------------------

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _browser_sign_in(client: TestClient, token: str) -> str:
    form = client.get("/console/sign-in")
    csrf = _CSRF.search(form.text)
    assert csrf is not None
    done = client.post(
        "/console/sign-in",
        data={"token": token, "csrf_token": csrf.group(1), "next": "/console/"},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    page = client.get("/console/")
    found = _CSRF.search(page.text)
    assert found is not None
    return found.group(1)


def _count_sessions() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(ConsoleSession)) or 0)


def test_sign_in_form_refuses_a_post_without_its_form_token(
    api: TestClient, make_user: MakeUser
) -> None:
    token = make_user("admin")
    refused = api.post(
        "/console/sign-in", data={"token": token, "next": "/console/"}, follow_redirects=False
    )
    assert refused.status_code == 403
    assert "expired" in refused.text
    assert "dataops_console=" not in refused.headers.get("set-cookie", "").replace(
        "dataops_console_signin", ""
    )
    assert _count_sessions() == 0


def test_console_post_without_csrf_token_is_refused_and_changes_nothing(
    api: TestClient, make_user: MakeUser
) -> None:
    csrf = _browser_sign_in(api, make_user("admin"))
    for data in ({}, {"csrf_token": "f" * 64}):
        refused = api.post("/console/sign-out", data=data, follow_redirects=False)
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert _count_sessions() == 1
    cross = api.post(
        "/console/sign-out",
        data={"csrf_token": csrf},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert cross.status_code == 403
    assert _count_sessions() == 1
    done = api.post("/console/sign-out", data={"csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303
    assert _count_sessions() == 0


def test_cookie_is_secure_when_the_console_is_served_over_https(
    api_app: FastAPI, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAOPS_PUBLIC_URL", "https://dataops.example")
    reset_settings()
    with TestClient(api_app, base_url="https://testserver") as client:
        form = client.get("/console/sign-in")
        csrf = _CSRF.search(form.text)
        assert csrf is not None
        done = client.post(
            "/console/sign-in",
            data={"token": make_user("admin"), "csrf_token": csrf.group(1)},
            follow_redirects=False,
        )
    cookie = done.headers["set-cookie"]
    assert "dataops_console=" in cookie
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/console"):
        assert flag.lower() in cookie.lower(), cookie


def test_cookie_follows_the_request_scheme_not_the_public_url(
    api_app: FastAPI, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An https public URL does not make the cookie Secure on a plain http request: a browser
    that opened the console over http would drop it and never stay signed in."""
    monkeypatch.setenv("DATAOPS_PUBLIC_URL", "https://dataops.example")
    reset_settings()
    with TestClient(api_app, base_url="http://testserver") as client:
        form = client.get("/console/sign-in")
        csrf = _CSRF.search(form.text)
        assert csrf is not None
        done = client.post(
            "/console/sign-in",
            data={"token": make_user("admin"), "csrf_token": csrf.group(1)},
            follow_redirects=False,
        )
    assert done.status_code == 303
    cookie = done.headers["set-cookie"]
    assert "dataops_console=" in cookie and "secure" not in cookie.lower(), cookie


def _probe_app(api_app: FastAPI) -> FastAPI:
    """The app plus a staff-only console page, a vendor-scoped one and a POST form."""
    router = APIRouter(prefix="/console")

    @router.get("/probe-staff")
    def staff(_user: Annotated[User, Depends(console_roles(*STAFF))]) -> PlainTextResponse:
        return PlainTextResponse("staff page")

    @router.get("/probe-queue/{queue_id}")
    def queue(queue_id: int, scope: ConsoleVendorScope) -> PlainTextResponse:
        with session_scope() as session:
            scope.check_queue(session, queue_id)
        return PlainTextResponse(f"queue {queue_id}")

    @router.post("/probe-form")
    def form(form: CsrfForm) -> PlainTextResponse:
        return PlainTextResponse(f"got {form.get('value')}")

    api_app.include_router(router)
    return api_app


def test_roles_vendor_scope_and_csrf_dependencies_answer_html_pages(
    api_app: FastAPI, make_user: MakeUser
) -> None:
    from tests.support.api import make_queue

    ensure_vendor("acme")
    ensure_vendor("globex")
    acme_queue = make_queue("acme", [])
    globex_queue = make_queue("globex", [])
    app = _probe_app(api_app)
    with TestClient(app) as vendor, TestClient(app) as staff, TestClient(app) as anonymous:
        csrf = _browser_sign_in(vendor, make_user("vendor", vendor="acme"))
        _browser_sign_in(staff, make_user("auditor"))

        refused = vendor.get("/console/probe-staff")
        assert refused.status_code == 403
        assert "<h1" in refused.text and "Not allowed" in refused.text
        assert staff.get("/console/probe-staff").text == "staff page"

        assert vendor.get(f"/console/probe-queue/{acme_queue}").status_code == 200
        other = vendor.get(f"/console/probe-queue/{globex_queue}")
        missing = vendor.get("/console/probe-queue/999999")
        assert other.status_code == missing.status_code == 404
        assert other.text.replace(f"queue {globex_queue}", "queue N") == missing.text.replace(
            "queue 999999", "queue N"
        )
        assert staff.get(f"/console/probe-queue/{globex_queue}").status_code == 200

        assert vendor.post("/console/probe-form", data={"value": "1"}).status_code == 403
        ok = vendor.post("/console/probe-form", data={"value": "1", "csrf_token": csrf})
        assert ok.text == "got 1"

        sent_away = anonymous.get("/console/probe-staff?x=1", follow_redirects=False)
        assert sent_away.status_code == 303
        assert sent_away.headers["location"] == (
            "/console/sign-in?next=%2Fconsole%2Fprobe-staff%3Fx%3D1"
        )
        assert anonymous.get("/", follow_redirects=False).headers["location"] == "/console/"
        # The API keeps its JSON errors.
        assert anonymous.get("/v1/no-such").json()["error"]["code"] == "not_found"


def test_signing_in_again_replaces_the_browsers_old_session(
    api: TestClient, make_user: MakeUser
) -> None:
    """A sign-in form opened in another tab before signing in, submitted after it."""
    token = make_user("scientist")
    api.cookies.clear()
    stale_form = _CSRF.search(api.get("/console/sign-in").text)
    assert stale_form is not None
    signin_cookie = api.cookies.get("dataops_console_signin")
    _browser_sign_in(api, token)
    first = api.cookies.get("dataops_console")
    api.cookies.set("dataops_console_signin", signin_cookie or "", path="/console/sign-in")
    again = api.post(
        "/console/sign-in",
        data={"token": token, "csrf_token": stale_form.group(1)},
        follow_redirects=False,
    )
    assert again.status_code == 303, again.text
    assert api.cookies.get("dataops_console") != first
    assert _count_sessions() == 1
