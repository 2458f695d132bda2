"""imagededup as a baseline, importable without torchvision.

``imagededup.methods`` imports its CNN method and ``imagededup.utils`` its model zoo, and both
import torchvision at module level. The hashing methods and search structures need neither,
so empty stand-ins are registered for those two modules before importing.
Install with ``pip install --no-deps imagededup`` (PyWavelets is already a dev dependency).
"""

from __future__ import annotations

import sys
import types
from importlib import metadata
from typing import Any

_STAND_INS = {"imagededup.utils.models": "CustomModel", "imagededup.methods.cnn": "CNN"}


def _register_stand_ins() -> None:
    for module_name, attr in _STAND_INS.items():
        if module_name not in sys.modules:
            module = types.ModuleType(module_name)
            setattr(module, attr, None)
            sys.modules[module_name] = module


def imagededup_version() -> str | None:
    """Installed imagededup version, or None when it is not installed."""
    try:
        return metadata.version("imagededup")
    except metadata.PackageNotFoundError:
        return None


def imagededup_phash(verbose: bool = False) -> Any:
    """An imagededup ``PHash`` hasher (encode_images, find_duplicates, hamming_distance)."""
    _register_stand_ins()
    from imagededup.methods import PHash

    return PHash(verbose=verbose)


def load_search() -> tuple[Any, dict[str, Any]]:
    """imagededup's ``HashEval`` (what ``find_duplicates`` runs) and its search structures,
    keyed by the ``search_method`` names it accepts."""
    _register_stand_ins()
    from imagededup.handlers.search.bktree import BKTree
    from imagededup.handlers.search.brute_force_cython import BruteForceCython
    from imagededup.handlers.search.retrieval import HashEval

    return HashEval, {"bktree": BKTree, "brute_force_cython": BruteForceCython}
