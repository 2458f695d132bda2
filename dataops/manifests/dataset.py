"""``TorchDataset``: one split of a catalog manifest as a ``torch.utils.data.Dataset``.

The manifest is looked up by name or id, its stored body is checked against the id before
any row is used (so training reads exactly the data the id names), and images are read from
the blob store, or from their original location when the catalog only references them.
Each DataLoader worker re-hashes an image the first time it reads it.

    from dataops.manifests import TorchDataset
    train = TorchDataset("helmets-v3", "train", transform=my_transform)

Where the manifest comes from, in order: a manifest body file (a path with a ``/`` or ending in
``.jsonl``: the ``path`` that ``dataops manifest create`` prints), the catalog named by
``catalog=`` (a database URL or a data dir), or the catalog configured like the CLI's
(``DATAOPS_DATABASE_URL`` / ``DATAOPS_DATA_DIR`` / ``.env``). A catalog that does not exist
is an error naming where it was looked for; no database is ever created here.

    TorchDataset("helmets-v3", "train", catalog="postgresql+psycopg://db/dataops")
    TorchDataset("/mnt/data/manifests/3f2a.../body.jsonl", "train", storage="s3://bucket/blobs")

torch is imported when the class is first used, never by ``import dataops.manifests``.
"""

from __future__ import annotations

import os
import re
from functools import partial
from pathlib import Path
from typing import Any

from dataops.errors import DataopsError

# A body stored by the catalog sits at manifests/<hex>/body.jsonl; an exported one may be <hex>.jsonl.
_HEX = re.compile(r"[0-9a-f]{64}")

Loaded = tuple[str, str, list[Any], str, list[str] | None]


def is_manifest_path(ref: str | os.PathLike[str]) -> bool:
    """Manifest names have no ``/`` and ids are ``sha256:...``; anything else is a file."""
    text = os.fspath(ref)
    return isinstance(ref, os.PathLike) or "/" in text or os.sep in text or text.endswith(".jsonl")


def _locate(catalog: str | os.PathLike[str] | None, storage: str | None) -> tuple[str, str]:
    """(database URL, store URL) of the catalog to read, refusing one that does not exist."""
    from dataops.config import get_settings
    from dataops.db import catalog_not_found, sqlite_file

    settings = get_settings()
    if catalog is None:
        return settings.resolved_database_url, storage or settings.resolved_storage_url
    text = os.fspath(catalog)
    if "://" in text:
        url, data_dir = text, None
        path = sqlite_file(url)
        if path is not None:
            data_dir = path.resolve().parent
    else:
        data_dir = Path(text).expanduser().resolve()
        path = data_dir / "catalog.db"
        url = f"sqlite:///{path}"
    if path is not None and not path.is_file():
        raise catalog_not_found(str(path.resolve()), source="given as catalog=")
    if storage is None:
        storage = (data_dir / "blobs").as_uri() if data_dir else settings.resolved_storage_url
    return url, storage


def _load(ref: str, catalog: str | os.PathLike[str] | None, storage: str | None) -> Loaded:
    """(name, id, rows, store URL, guideline classes) of a manifest, body verified by its id."""
    from sqlalchemy.exc import DBAPIError

    from dataops.db import catalog_not_found, session_scope
    from dataops.manifests.classes import manifest_classes
    from dataops.manifests.service import get_manifest, read_rows
    from dataops.migrate import current_revision
    from dataops.storage import get_store

    url, store_url = _locate(catalog, storage)
    try:
        has_tables = current_revision(url) is not None
    except DBAPIError as exc:
        from dataops.errors import ServiceUnavailable

        raise ServiceUnavailable(f"cannot open the catalog database: {exc.orig}") from None
    if not has_tables:
        from sqlalchemy.engine import make_url

        shown = make_url(url).render_as_string(hide_password=True)
        source = None if catalog is None else "given as catalog="
        raise catalog_not_found(shown, "the database has no catalog tables", source=source)
    with session_scope(url) as session:
        manifest = get_manifest(session, ref)
        name, manifest_id = manifest.name, manifest.content_hash
        store = get_store(store_url)
        rows = read_rows(manifest, store)
        classes = manifest_classes(session, manifest, rows)
    return name, manifest_id, rows, store.url, classes


def _load_file(path: Path, storage: str | None) -> Loaded:
    """Rows of a manifest body file; its id is checked when the file's name carries one."""
    from dataops.config import get_settings
    from dataops.manifests.body import manifest_id, read_body, verify_body
    from dataops.manifests.errors import ManifestTampered

    if not path.is_file():
        raise DataopsError(
            f"no manifest body file at {path}: give the `path` that `dataops manifest create` "
            "or `dataops manifest show` prints, or a manifest name with `catalog=`"
        )
    named = path.parent.name if path.name == "body.jsonl" else path.stem
    if _HEX.fullmatch(named):
        expected = f"sha256:{named}"
    else:
        with path.open("rb") as handle:
            expected = manifest_id(handle.read())
    problems = verify_body(path, expected, deep=True)
    if problems:
        raise ManifestTampered(f"manifest body {path} fails verification: {problems[0]}")
    _, rows = read_body(path)
    return path.name, expected, rows, storage or get_settings().resolved_storage_url, None


def _make_torch_dataset() -> type:
    from dataops.manifests.files import image_bytes
    from dataops.manifests.loader import RowsDataset

    class TorchDataset(RowsDataset):
        """(image, class index) pairs of one split of a manifest, or detection targets.

        Classes are the guideline's (newest version first, as recorded in the manifest when
        it was made) plus any other class the rows use: sorted for image classes, so indices
        match the folder export's ``classes.txt``;
        in guideline order for boxes, label ``i`` being COCO category id ``i`` of the export
        (0 is ``__background__``). A box manifest yields (float32 CHW tensor, ``{"boxes":
        (N, 4) xyxy pixels, "labels": int64}``); batch it with
        ``dataops.manifests.detection.collate``. A body file read without a catalog has no
        guideline, so only the classes its rows use are numbered.

        ``manifest_id`` is a manifest name, ``sha256:`` id or body file path; ``catalog`` a
        database URL or data dir (default: the configured one); ``storage`` the blob store URL
        (default: the catalog's data dir, or ``DATAOPS_STORAGE_URL``).

        ``transform`` gets an RGB PIL image with EXIF orientation applied; without one the
        dataset yields that PIL image. Bytes that no longer hash to the manifest's sha256
        raise ``BlobIntegrityError`` naming the file.
        """

        def __init__(
            self,
            manifest_id: str | os.PathLike[str],
            split: str,
            transform: Any = None,
            verify_sha256: bool = True,
            *,
            catalog: str | os.PathLike[str] | None = None,
            storage: str | None = None,
        ) -> None:
            if is_manifest_path(manifest_id):
                loaded = _load_file(Path(os.fspath(manifest_id)).expanduser(), storage)
            else:
                loaded = _load(os.fspath(manifest_id), catalog, storage)
            name, ident, rows, store_url, classes = loaded
            splits = sorted({row["split"] for row in rows})
            if split not in splits:
                raise DataopsError(
                    f"manifest {name} has no split {split!r}; it has {', '.join(splits)}"
                )
            super().__init__(
                rows, split, partial(image_bytes, store_url), transform, verify_sha256, classes
            )
            self.name = name
            self.manifest_id = ident

    TorchDataset.__module__ = __name__
    TorchDataset.__qualname__ = "TorchDataset"
    return TorchDataset


def __getattr__(name: str) -> Any:
    """Build ``TorchDataset`` on first use (also when unpickled in a worker process)."""
    if name == "TorchDataset":
        cls = _make_torch_dataset()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
