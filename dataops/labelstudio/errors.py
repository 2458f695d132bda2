"""Errors raised by the Label Studio client layer.

Callers tell a transient outage (retry later, resume the sync) from a request the server
refused (fix the input) by catching ``LabelStudioUnavailable`` before ``LabelStudioError``.
``ls_status`` is Label Studio's HTTP status; ``status_code`` is what our own API answers.
"""

from __future__ import annotations

from typing import Any

from dataops.errors import Conflict, DataopsError, ServiceUnavailable


class BatchHasNoQueue(Conflict):
    """A batch without a vendor queue cannot be pushed; each face says how to give it one."""

    def __init__(self, batch_id: int) -> None:
        super().__init__(
            f"batch {batch_id} has no vendor queue, so it cannot be pushed: assign it a queue "
            "(or cancel it)"
        )
        self.batch_id = batch_id


class LabelStudioError(DataopsError):
    """Label Studio refused a request; the message is the server's own."""

    status_code = 502
    code = "labelstudio_error"

    def __init__(self, message: str, *, ls_status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.ls_status = ls_status
        self.body = body


class LabelStudioUnavailable(LabelStudioError, ServiceUnavailable):
    """Label Studio could not be reached (or kept failing) within the retry budget."""

    status_code = 503
    code = "service_unavailable"

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        ls_status: int | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, ls_status=ls_status, body=body)
        self.attempts = attempts
