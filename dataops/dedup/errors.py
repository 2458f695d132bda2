"""What a dedup caller can act on: a missing group, no embeddings yet, a concurrent run."""

from __future__ import annotations

from dataops.errors import Conflict, DataopsError, NotFound


class GroupNotFound(NotFound):
    code = "group_not_found"


class NoEmbeddings(DataopsError):
    """Semantic dedup needs a current model version whose embeddings were computed."""

    code = "no_embeddings"


class DedupConflict(Conflict):
    """Another dedup run committed while this one computed; its results would be stale."""

    code = "dedup_conflict"


class LeakSourceError(DataopsError):
    """The leak report needs exactly one split source: a manifest or an image attribute."""

    code = "bad_leak_source"
