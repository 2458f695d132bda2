"""Audit errors: each message says what was wrong and what to do about it."""

from __future__ import annotations

from dataops.errors import Conflict, DataopsError, NotFound


def literal(text: str) -> str:
    """Text kept as it is inside an error message template (braces escaped)."""
    return text.replace("{", "{{").replace("}", "}}")


class AuditNotFound(NotFound):
    pass


class BatchClosed(Conflict):
    """The batch already has its decision; audits of a closed batch would contradict it."""


class NothingToAudit(DataopsError):
    """No overlap or gold item has an answer, so there is no pass rate to compare to a gate."""


class AuditInputError(DataopsError):
    """Bad audit parameters, or labels that cannot be compared (mixed kinds, several tasks)."""


class RatingsFileError(DataopsError):
    """A ratings CSV cannot be read; the message names the line and column."""
