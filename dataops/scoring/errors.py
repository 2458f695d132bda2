"""Scoring errors: each message says what was wrong and what to do about it."""

from __future__ import annotations

from dataops.errors import Conflict, DataopsError, NotFound, ServiceUnavailable


class ModelNotFound(NotFound):
    code = "model_not_found"


class InvalidModel(DataopsError):
    """The file is not a usable TorchScript classifier, or its classes or input spec are wrong."""

    code = "invalid_model"


class ModelConflict(Conflict):
    """The same bytes are already registered under this name with other classes or input spec."""

    code = "model_conflict"


class SandboxUnavailable(ServiceUnavailable):
    """The process that runs models cannot be started or cannot lock itself down."""

    code = "model_sandbox_unavailable"
