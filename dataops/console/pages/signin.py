"""Sign-in with an API token, and sign-out.

The sign-in form has no session yet, so its CSRF token is a double-submit one: a random
value in a short-lived, SameSite=Strict cookie scoped to this path and in the form; a form
posted from another site carries neither (and its Origin is refused).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from dataops.api.deps import SessionDep
from dataops.auth.errors import Unauthenticated
from dataops.config import get_settings
from dataops.console import sessions
from dataops.console.deps import ActiveSessionDep, CsrfForm, same_origin
from dataops.console.errors import SIGN_IN_PATH, safe_next
from dataops.console.render import render

router = APIRouter()

_SIGNIN_COOKIE = "dataops_console_signin"
_SIGNIN_COOKIE_SECONDS = 3600
_REFUSED = (
    "That token was not accepted: it is invalid, expired or revoked, or its user is "
    "disabled. Check that you pasted the whole token (dok_…)."
)
_STALE = "The sign-in form had expired or did not come from this page. Please try again."


def _secure(request: Request) -> bool:
    """Secure cookies when the browser talks https: directly, or through a TLS proxy whose
    X-Forwarded-Proto uvicorn trusts (``--proxy-headers``, ``FORWARDED_ALLOW_IPS``). Not the
    public URL setting: a browser on plain http would drop a Secure cookie and never sign in."""
    return request.url.scheme == "https"


def _form(
    request: Request,
    next_path: str,
    *,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    signin_csrf = secrets.token_urlsafe(32)
    response = render(
        request,
        "signin.html",
        {
            "next": safe_next(next_path),
            "error": error,
            "notice": notice,
            "signin_csrf": signin_csrf,
        },
        user=None,
        status_code=status_code,
    )
    response.set_cookie(
        _SIGNIN_COOKIE,
        signin_csrf,
        max_age=_SIGNIN_COOKIE_SECONDS,
        path=SIGN_IN_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.get("/sign-in")
def sign_in_page(
    request: Request, session: SessionDep, next: str = "/console/", signed_out: bool = False
) -> Response:
    settings = get_settings().console
    cookie = request.cookies.get(sessions.COOKIE_NAME)
    if sessions.resume(session, cookie, settings=settings) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    notice = "You are signed out." if signed_out else None
    return _form(request, next, notice=notice)


@router.post("/sign-in")
def sign_in(
    request: Request,
    session: SessionDep,
    token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/console/",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    expected = request.cookies.get(_SIGNIN_COOKIE, "")
    if (
        not same_origin(request)
        or not expected
        or not hmac.compare_digest(expected.encode(), csrf_token.encode())
    ):
        return _form(request, next, error=_STALE, status_code=403)
    try:
        new = sessions.sign_in(session, token, settings=get_settings().console)
        # A new sign-in replaces the browser's old session (never two live ids at once).
        sessions.sign_out(session, request.cookies.get(sessions.COOKIE_NAME))
    except Unauthenticated:
        return _form(request, next, error=_REFUSED, status_code=401)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        sessions.COOKIE_NAME,
        new.session_id,
        max_age=get_settings().console.absolute_timeout,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(_SIGNIN_COOKIE, path=SIGN_IN_PATH, httponly=True, samesite="strict")
    return response


@router.post("/sign-out")
def sign_out(
    request: Request, session: SessionDep, _active: ActiveSessionDep, _form_data: CsrfForm
) -> Response:
    sessions.sign_out(session, request.cookies.get(sessions.COOKIE_NAME))
    response = RedirectResponse(f"{SIGN_IN_PATH}?signed_out=1", status_code=303)
    response.delete_cookie(sessions.COOKIE_NAME, path="/console", httponly=True, samesite="strict")
    return response
