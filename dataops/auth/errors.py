"""Authentication and authorization failures; messages never contain the presented token."""

from __future__ import annotations

from dataops.errors import Conflict, DataopsError, Forbidden, NotFound


class Unauthenticated(DataopsError):
    """No usable credentials: missing, malformed, unknown, expired or revoked."""

    status_code = 401
    code = "unauthenticated"
    headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012


class PermissionDenied(Forbidden):
    pass


class UserNotFound(NotFound):
    pass


class TokenNotFound(NotFound):
    pass


class UserExists(Conflict):
    pass


class InvalidUser(DataopsError):
    """A role, name, vendor or expiry that cannot be used."""

    code = "invalid_user"
