"""Manifest files: written atomically on disk and into the blob store, read back locally.

Every file of a manifest appears whole or not at all: a crash mid-write leaves a temporary
name, never a truncated body that would fail verification later.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dataops.storage import BlobStore, BlobStoreError, check_key, get_store, read_uri

# A manifest row (``body.RowRecord``); only its ``blob_key`` and ``uri`` are read here.
Row = Mapping[str, Any]


def atomic_write(
    directory: Path, suffix: str, write: Callable[[Path], object], fsync: bool = True
) -> Path:
    """Write through ``write`` into a temp file in ``directory``; caller renames it."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def store_file(store: BlobStore, key: str, path: Path) -> None:
    """Copy a file into the store under a temporary name, then rename: all or nothing."""
    target = f"{store.root}/{check_key(key)}"
    tmp = f"{target}.tmp-{uuid.uuid4().hex}"
    try:
        store.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        store.fs.put_file(str(path), tmp)
        store.fs.mv(tmp, target)
    except OSError as exc:
        raise BlobStoreError(f"cannot write {key} to {store.url}: {exc.strerror or exc}") from exc


def store_bytes(store: BlobStore, key: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="dataops-manifest-") as tmp:
        path = Path(tmp) / "file"
        path.write_bytes(data)
        store_file(store, key, path)


@contextmanager
def local_copy(store: BlobStore, key: str) -> Iterator[Path]:
    """A local path of a stored file: the file itself on a local store, else a temp copy."""
    local = store.local_path(key)
    if local is not None:
        yield Path(local)
        return
    with tempfile.TemporaryDirectory(prefix="dataops-manifest-") as tmp:
        path = Path(tmp) / key.rsplit("/", 1)[-1]
        try:
            store.fs.get_file(f"{store.root}/{check_key(key)}", str(path))
        except FileNotFoundError:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise BlobStoreError(f"cannot read {key} from {store.url}: {exc}") from exc
        yield path


def image_location(store: BlobStore, row: Row) -> str:
    """Where a row's image is: its blob if stored, else its original location."""
    if row["blob_key"]:
        return store.local_path(row["blob_key"]) or f"{store.url}/{row['blob_key']}"
    return str(row["uri"])


def image_bytes(store_url: str, row: Row) -> bytes:
    """An image's bytes as a manifest references them: its blob if stored, else its original."""
    if row["blob_key"]:
        return get_store(store_url).get(row["blob_key"])
    return read_uri(row["uri"])


def locate_image(store: BlobStore, row: Row) -> str | bytes:
    """A local path of an image when there is one (exports hard-link it), else its bytes."""
    location = image_location(store, row)
    if "://" in location and not location.startswith("file://"):
        return image_bytes(store.url, row)
    return location.removeprefix("file://")
