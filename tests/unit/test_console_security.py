"""Pure pieces of the console's security: where sign-in may send a browser, CSRF tokens,
which responses get the security headers."""

from __future__ import annotations

import pytest

from dataops.console.errors import safe_next
from dataops.console.headers import CSP, _covered
from dataops.console.sessions import (
    ActiveSession,
    csrf_matches,
    csrf_token_for,
    hash_session_id,
)


@pytest.mark.parametrize(
    "target",
    ["/console/", "/console/queues/q-1?page=2", "/console/batches/7"],
)
def test_console_paths_are_kept_after_sign_in(target: str) -> None:
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "https://evil.example/console/",
        "//evil.example/console/",
        "/\\evil.example",
        "/console\\@evil.example",
        "/v1/images",
        "/console/\r\nSet-Cookie: x=1",
        "javascript:alert(1)",
    ],
)
def test_anything_else_goes_to_the_overview(target: str | None) -> None:
    assert safe_next(target) == "/console/"


def test_csrf_token_is_bound_to_its_session_and_not_derivable_from_the_stored_hash() -> None:
    first, second = "session-one", "session-two"
    assert csrf_token_for(first) == csrf_token_for(first)
    assert csrf_token_for(first) != csrf_token_for(second)
    assert csrf_token_for(first) != hash_session_id(first)
    assert len(csrf_token_for(first)) == 64


@pytest.mark.parametrize(
    ("presented", "accepted"),
    [(None, False), ("", False), ("x", False), (csrf_token_for("other"), False)],
)
def test_only_the_sessions_own_token_matches(presented: str | None, accepted: bool) -> None:
    active = ActiveSession(row=None, user=None, csrf_token=csrf_token_for("mine"))  # type: ignore[arg-type]
    assert csrf_matches(active, presented) is accepted
    assert csrf_matches(active, csrf_token_for("mine")) is True


@pytest.mark.parametrize(
    ("path", "covered"),
    [
        ("/", True),
        ("/console", True),
        ("/console/", True),
        ("/console/static/console.css", True),
        ("/consoleX", False),
        ("/v1/images", False),
        ("/docs", False),
    ],
)
def test_security_headers_cover_the_console_and_leave_the_api_alone(
    path: str, covered: bool
) -> None:
    assert _covered(path) is covered


def test_csp_allows_no_inline_code_and_no_other_origin() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in CSP and "unsafe-eval" not in CSP
