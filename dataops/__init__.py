"""dataops: the system of record for computer-vision training data."""

__version__ = "0.1.0"
