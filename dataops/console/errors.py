"""What a browser gets when a console page cannot be shown: a redirect to sign-in, or an
HTML error page with the same status the API would answer (403, 404, 422...), never JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from dataops.errors import DataopsError, Forbidden

PREFIX = "/console"
SIGN_IN_PATH = f"{PREFIX}/sign-in"

Handler = Callable[[Request, Exception], Response | Awaitable[Response]]


class SignInRequired(Exception):
    """No live console session: the browser goes to the sign-in page, then back to ``next_path``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRefused(Forbidden):
    """A form without this session's CSRF token, or posted from another origin."""

    code = "csrf_refused"


def safe_next(value: str | None) -> str:
    """Only a console path may follow sign-in (never another site: ``//host`` or ``/\\host``)."""
    if (
        not value
        or not value.startswith(PREFIX)
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 32 for c in value)
    ):
        return f"{PREFIX}/"
    return value


def sign_in_redirect(next_path: str) -> RedirectResponse:
    target = safe_next(next_path)
    query = "" if target == f"{PREFIX}/" else "?" + urlencode({"next": target})
    return RedirectResponse(f"{SIGN_IN_PATH}{query}", status_code=303)


def _sign_in_required(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return sign_in_redirect(exc.next_path)


_TITLES = {
    400: "The request could not be used",
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    409: "Conflict",
    413: "Too large",
    422: "Some values are not valid",
    503: "A service is unavailable",
}


def error_page(request: Request, status: int, message: str) -> Response:
    from dataops.console.render import render

    return render(
        request,
        "error.html",
        {
            "status": status,
            "title": _TITLES.get(status, "Something went wrong"),
            "message": message,
        },
        user=getattr(request.state, "console_viewer", None),
        status_code=status,
    )


def _message(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, DataopsError):
        return exc.status_code, str(exc)
    if isinstance(exc, HTTPException):
        if exc.status_code == 404:
            return 404, "There is no such page."
        return exc.status_code, exc.detail if isinstance(exc.detail, str) else "request refused"
    if isinstance(exc, RequestValidationError):
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'value'}: {e.get('msg', '')}"
            for e in list(exc.errors())[:5]
        ]
        return 422, "; ".join(problems) or "invalid input"
    return 500, "Internal error; it has been logged."


def _html_for_console(api_handler: Handler) -> Handler:
    """Console paths get an HTML page; every other path keeps the API's JSON handler."""

    async def handler(request: Request, exc: Exception) -> Response:
        if request.url.path == PREFIX or request.url.path.startswith(f"{PREFIX}/"):
            status, message = _message(exc)
            if status >= 500:
                api_handler_result = api_handler(request, exc)  # logs it the API's way
                if isinstance(api_handler_result, Awaitable):
                    await api_handler_result
            return error_page(request, status, message)
        result = api_handler(request, exc)
        return await result if isinstance(result, Awaitable) else result

    return handler


def install(app: FastAPI) -> None:
    """Call after the API's handlers are installed: it wraps them for console paths."""
    app.add_exception_handler(SignInRequired, _sign_in_required)
    for exc_class in (DataopsError, HTTPException, RequestValidationError, Exception):
        api_handler = app.exception_handlers.get(exc_class)
        if api_handler is not None:
            app.add_exception_handler(exc_class, _html_for_console(api_handler))
