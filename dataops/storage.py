"""Content-addressed blob store over fsspec: keys are ``sha256[:2]/sha256``."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from collections.abc import Sequence
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


def read_uri(uri: str, roots: Sequence[str] | None = None) -> bytes:
    """Bytes of an image location: a local path or any fsspec URL; with ``roots``, only one
    inside them (checked here, where the bytes are read, not only when the path was given)."""
    if "://" not in uri or uri.startswith("file://"):
        # fsspec's URL parsing costs a quarter of a millisecond per file: a lot at ingest rates
        # The path is resolved once: the roots are checked on, and the file opened at, that path.
        real = os.path.realpath(uri.removeprefix("file://"))
        if roots is not None and not within_roots(real, roots):
            raise RefusedLocation("outside the ingest roots")
        return _read_fd(_open_nofollow(real))
    if roots is not None and not within_roots(uri, roots):
        raise RefusedLocation("outside the ingest roots")
    with fsspec.open(uri, "rb") as fh:
        return bytes(fh.read())


class RefusedLocation(OSError):
    """A location that is not read: outside the allowed roots, a link that appeared after the
    path was resolved, or not a regular file (a FIFO would block the reader for ever)."""


_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
    stat.S_IFLNK: "a symbolic link that appeared after the path was resolved",
}


def within_roots(location: str, roots: Sequence[str]) -> bool:
    """Whether a location lies inside one of the roots: URLs by prefix, paths once resolved."""
    if "://" in location and not location.startswith("file://"):
        return any(location.startswith(r.rstrip("/") + "/") for r in roots if "://" in r)
    real = os.path.realpath(location.removeprefix("file://"))
    for root in roots:
        if "://" not in root or root.startswith("file://"):
            real_root = os.path.realpath(root.removeprefix("file://"))
            if os.path.commonpath([real, real_root]) == real_root:
                return True
    return False


def _open_nofollow(real: str) -> int:
    """Open an already resolved path one component at a time without following any link, so a
    link planted after the path was resolved (and checked) is refused instead of followed."""
    parts = [p for p in real.split("/") if p]
    if not parts:
        raise RefusedLocation(_KINDS[stat.S_IFDIR])
    dir_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                step = os.open(
                    part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
                )
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and stat.S_ISLNK(
                    os.stat(part, dir_fd=dir_fd, follow_symlinks=False).st_mode
                ):
                    raise RefusedLocation(
                        "a folder on its path became a link after the path was resolved"
                    ) from exc
                raise
            os.close(dir_fd)
            dir_fd = step
        name = parts[-1]
        # lstat first: a FIFO or a device is never opened (opening one can block or act).
        found = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISREG(found.st_mode):
            kind = _KINDS.get(stat.S_IFMT(found.st_mode), "not a file")
            raise RefusedLocation(f"not a regular file ({kind}); only regular files are read")
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (found.st_dev, found.st_ino):
            os.close(fd)
            raise RefusedLocation("the file was replaced while it was being opened")
        return fd
    finally:
        os.close(dir_fd)


def read_local(path: str) -> bytes:
    """A regular file's bytes, read without following links that appear after resolution and
    without ever blocking on a FIFO or a device."""
    return _read_fd(_open_nofollow(os.path.realpath(path)))


def _read_fd(fd: int) -> bytes:
    with open(fd, "rb", closefd=True) as fh:
        return fh.read()
