from dataops.errors import Conflict, DataopsError, Forbidden, NotFound


class IngestInputError(DataopsError):
    """A path, list file or attributes file given to ingest cannot be used."""


class ImageNotFound(NotFound):
    pass


class ImageUnavailable(NotFound):
    """The catalog knows the image but its bytes cannot be read."""

    code = "image_unavailable"


class ImageChanged(Conflict):
    """The bytes found for an image are not the bytes it was catalogued with."""

    code = "image_changed"


class IngestPathRefused(Forbidden):
    """A path an ingest over HTTP may not read: outside the ingest roots, relative, or
    stepping out with ``..``."""

    code = "path_not_allowed"


class InvalidFilter(DataopsError):
    status_code = 422
    code = "validation_error"
