"""Every error the API returns has one shape: ``{"error": {"code": ..., "message": ...}}``.

Bad input is always a 4xx with a message a client can act on: ``DataopsError`` subclasses
carry their own status, validation failures are 422 (400 for a body that is not JSON),
bodies over ``DATAOPS_API__MAX_BODY_BYTES`` are 413, unknown routes 404. A 5xx means a
backing service is down (503) or a bug (500, logged with its traceback, never with the
request's headers).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dataops.errors import DataopsError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}
_MAX_MESSAGE = 500


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable reason.", examples=["not_found"])
    message: str = Field(description="What went wrong, for people.", examples=["no image 42"])
    field: str | None = Field(
        default=None, description="The request field the error is about, when there is one."
    )
    details: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field validation problems, when there are several."
    )


class ErrorResponse(BaseModel):
    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Malformed request (for example a body that is not JSON).",
    401: "Missing, invalid, expired or revoked bearer token.",
    403: "The caller's role (or the URL's signature) does not allow this.",
    404: "No such resource, or not visible to this caller.",
    409: "Conflicts with the current state.",
    413: "Request body over the configured limit.",
    422: "Parameters or body fail validation.",
    503: "A backing service (database, broker) is unavailable.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for a route's error statuses, all with the shared error body."""
    return {
        status: {
            "model": ErrorResponse,
            "description": _DESCRIPTIONS.get(status, "Error."),
        }
        for status in statuses
    }


def error_json(
    status: int,
    code: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    field: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message[:_MAX_MESSAGE]}
    if field:
        body["field"] = field
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _dataops_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DataopsError)
    headers = getattr(exc, "headers", None)
    return error_json(exc.status_code, exc.code, str(exc), headers=headers, field=exc.field)


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_json(400, "malformed_json", "the request body is not valid JSON")
    # Inputs are left out on purpose: they can be large, or secrets sent in the wrong field.
    details = [
        {"loc": _loc(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in errors[:20]
    ]
    first = details[0] if details else {"loc": "request", "msg": "invalid"}
    message = f"{first['loc']}: {first['msg']}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return error_json(422, "validation_error", message, details=details)


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return error_json(exc.status_code, code, message, headers=exc.headers)


def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("catalog database unavailable: %s", type(exc).__name__)
    return error_json(503, "service_unavailable", "the catalog database is unavailable")


def _database_rejected(_request: Request, _exc: Exception) -> JSONResponse:
    return error_json(422, "invalid_value", "a value was rejected by the catalog database")


def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_json(500, "internal_error", "internal error")


def install(app: FastAPI, *, max_body_bytes: int) -> None:
    from sqlalchemy.exc import DataError, InterfaceError, OperationalError

    app.add_exception_handler(DataopsError, _dataops_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(InterfaceError, _database_unavailable)
    app.add_exception_handler(DataError, _database_rejected)
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=max_body_bytes)


class BodyLimitMiddleware:
    """413 for bodies over the limit: by Content-Length before the app runs, and by counting
    the bytes of chunked or lying uploads as they stream in."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large()(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"request body over the {self.max_body_bytes}-byte limit"

    def _too_large(self) -> JSONResponse:
        return error_json(413, "payload_too_large", self._message())


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
