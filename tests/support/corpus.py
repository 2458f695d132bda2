"""The one place that finds the sample corpus, for every test and benchmark.

``DATAOPS_CORPUS`` names it; otherwise it is ``shared/corpus`` beside the repository
(``<repo>/../shared/corpus``), never a machine-specific absolute path. A missing corpus is an
error that names where it was looked for, not a silent switch to another folder.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENV_VAR = "DATAOPS_CORPUS"


def corpus_dir() -> Path:
    """Where the corpus should be (it may be missing: see `require_corpus`)."""
    configured = os.environ.get(ENV_VAR)
    return (
        Path(configured).expanduser().resolve() if configured else REPO.parent / "shared" / "corpus"
    )


CORPUS = corpus_dir()


def require_corpus() -> Path:
    """The corpus folder, or an error saying where it was looked for and how to point at it."""
    if not CORPUS.is_dir():
        raise FileNotFoundError(
            f"the sample corpus is missing at {CORPUS}; set {ENV_VAR} to its folder"
        )
    return CORPUS
