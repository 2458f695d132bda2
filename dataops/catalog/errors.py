from dataops.errors import Conflict, DataopsError, NotFound


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
