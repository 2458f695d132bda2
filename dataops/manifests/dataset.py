"""``TorchDataset``: one split of a catalog manifest as a ``torch.utils.data.Dataset``.

The manifest is looked up by name or id, its stored body is checked against the id before
any row is used (so training reads exactly the data the id names), and images are read from
the blob store, or from their original location when the catalog only references them.
Each DataLoader worker re-hashes an image the first time it reads it.

    from dataops.manifests import TorchDataset
    train = TorchDataset("helmets-v3", "train", transform=my_transform)

torch is imported when the class is first used, never by ``import dataops.manifests``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from dataops.errors import DataopsError


def _load(ref: str) -> tuple[str, str, list[Any], str]:
    """(name, id, rows, store URL) of a manifest, the body verified against its id."""
    from dataops.db import session_scope
    from dataops.manifests.service import get_manifest, read_rows
    from dataops.storage import get_store

    with session_scope() as session:
        manifest = get_manifest(session, ref)
        name, manifest_id = manifest.name, manifest.content_hash
        store = get_store()
        rows = read_rows(manifest, store)
    return name, manifest_id, rows, store.url


def _make_torch_dataset() -> type:
    from dataops.manifests.loader import RowsDataset
    from dataops.manifests.service import image_bytes

    class TorchDataset(RowsDataset):
        """(image, class index) pairs of one split of a manifest; classes sorted over all splits.

        ``transform`` gets an RGB PIL image with EXIF orientation applied; without one the
        dataset yields that PIL image. Bytes that no longer hash to the manifest's sha256
        raise ``BlobIntegrityError`` naming the file.
        """

        def __init__(
            self,
            manifest_id: str,
            split: str,
            transform: Any = None,
            verify_sha256: bool = True,
        ) -> None:
            name, ident, rows, store_url = _load(manifest_id)
            splits = sorted({row["split"] for row in rows})
            if split not in splits:
                raise DataopsError(
                    f"manifest {name} has no split {split!r}; it has {', '.join(splits)}"
                )
            super().__init__(rows, split, partial(image_bytes, store_url), transform, verify_sha256)
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
