"""Content-addressed blob store over fsspec: keys are ``sha256[:2]/sha256``."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import Any

import fsspec

from dataops.errors import DataopsError, ServiceUnavailable

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{64}$|^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$")


class BlobStoreError(ServiceUnavailable):
    """The blob store cannot be written or read (full disk, permissions, network)."""


def blob_key(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise DataopsError(f"not a sha256 hex digest: {sha256!r}")
    return f"{sha256[:2]}/{sha256}"


def check_key(key: str) -> str:
    """Refuse keys that could escape the store (``..``, absolute paths, odd characters)."""
    if ".." in key.split("/") or not _KEY.match(key):
        raise DataopsError(f"invalid blob key {key!r}")
    return key


class BlobStore:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.fs: Any
        self.fs, self.root = fsspec.core.url_to_fs(self.url)

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Store bytes under their digest; a no-op when already present."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        key = blob_key(digest)
        path = self._path(key)
        try:
            if self.fs.exists(path):
                return key
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            tmp = f"{path}.tmp-{hashlib.sha256(path.encode()).hexdigest()[:8]}"
            with self.fs.open(tmp, "wb") as fh:
                fh.write(data)
            self.fs.mv(tmp, path)
        except OSError as exc:
            raise BlobStoreError(
                f"cannot write blob {key} to {self.url}: {exc.strerror or exc}"
            ) from exc
        return key

    def put_named(self, key: str, data: bytes) -> str:
        """Store derived files (manifest bodies, reports) under an explicit key."""
        path = self._path(key)
        try:
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            with self.fs.open(path, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            raise BlobStoreError(
                f"cannot write {key} to {self.url}: {exc.strerror or exc}"
            ) from exc
        return key

    def get(self, key: str) -> bytes:
        try:
            with self.fs.open(self._path(key), "rb") as fh:
                return bytes(fh.read())
        except FileNotFoundError as exc:
            raise DataopsError(f"blob {key} is missing from {self.url}") from exc

    def local_path(self, key: str) -> str | None:
        """A filesystem path when the store is local, so loaders can mmap or hardlink."""
        return self._path(key) if self.url.startswith("file://") else None


@lru_cache(maxsize=8)
def get_store(url: str | None = None) -> BlobStore:
    if url is None:
        from dataops.config import get_settings

        url = get_settings().resolved_storage_url
    return BlobStore(url)


def read_uri(uri: str) -> bytes:
    """Bytes of an image location: a local path or any fsspec URL."""
    if "://" not in uri or uri.startswith("file://"):
        # fsspec's URL parsing costs a quarter of a millisecond per file: a lot at ingest rates
        with open(uri.removeprefix("file://"), "rb") as local:
            return local.read()
    with fsspec.open(uri, "rb") as fh:
        return bytes(fh.read())
