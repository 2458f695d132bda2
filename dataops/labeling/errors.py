"""Labeling errors: each message says what was wrong and what to do about it."""

from __future__ import annotations

from dataops.errors import Conflict, DataopsError, NotFound


class GuidelineError(DataopsError):
    """A guideline file cannot be parsed or does not describe a usable labeling task."""


class GuidelineNotFound(NotFound):
    pass


class VendorNotFound(NotFound):
    pass


class QueueNotFound(NotFound):
    pass


class AnnotatorNotFound(NotFound):
    pass


class LabelNotFound(NotFound):
    pass


class InvalidLabel(DataopsError):
    """A label payload is malformed or names a class the guideline does not define."""


class QueueSettingsError(DataopsError):
    """Queue parameters out of range or naming an unknown Label Studio connection."""


class AnnotatorConflict(Conflict):
    """A mapping would tie one Label Studio user to two people, or one person to two vendors."""


class QueuePinned(Conflict):
    """A queue keeps the guideline version it was created with."""


class LabelFileError(DataopsError):
    """A label file cannot be read at all (encoding, syntax, missing columns)."""


class LabelImportRejected(DataopsError):
    """Some rows of a label file are invalid, so none of it was imported."""
