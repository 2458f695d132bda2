from dataops.errors import DataopsError, NotFound


class IngestInputError(DataopsError):
    """A path, list file or attributes file given to ingest cannot be used."""


class ImageNotFound(NotFound):
    pass
