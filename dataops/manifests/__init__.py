"""Manifests: leakage-safe splits, canonical hashed bodies, exports and a torch Dataset.

Importing this package stays light: torch and pyarrow are imported only by the functions
that need them.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    """``dataops.manifests.TorchDataset`` without importing torch up front."""
    if name == "TorchDataset":
        from dataops.manifests import dataset

        return dataset.TorchDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
