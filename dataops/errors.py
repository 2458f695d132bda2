"""Errors a user can act on; the CLI prints them as one line and the API as a 4xx JSON body."""

from __future__ import annotations


class DataopsError(Exception):
    """Base for errors caused by input or environment, never by a bug."""

    status_code = 400
    code = "bad_request"


class NotFound(DataopsError):
    status_code = 404
    code = "not_found"


class Conflict(DataopsError):
    status_code = 409
    code = "conflict"


class Forbidden(DataopsError):
    status_code = 403
    code = "forbidden"


class ServiceUnavailable(DataopsError):
    """A backing service (database, broker, Label Studio) cannot be reached."""

    status_code = 503
    code = "service_unavailable"
