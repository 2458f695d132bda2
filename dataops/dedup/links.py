"""Which members may stay with a representative they do not match by hash: staged links.

A crop never matches its original's full-image hash, and a crop and a rotated copy of one
original match each other by nothing at all; the view and geometric stages pair each with
the original. The anti-chaining guard therefore also keeps a member that a stage paired with
the representative directly, or that shares a neighbour with it where at least one of the
two pairs came from a stage (a crop and a letterboxed copy of one original). Two hash pairs
in a row stay a chain (a slow pan A~B~C still never puts A and C together), and no path
longer than two steps is ever kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MAX_STEPS = 2
"""How far from the representative a staged member may sit: a direct pair or one neighbour
in common (longer chains are split)."""


def _symmetric(n: int, a: NDArray[np.int64], b: NDArray[np.int64]) -> object:
    from scipy.sparse import coo_matrix

    rows = np.concatenate([a, b])
    cols = np.concatenate([b, a])
    data = np.ones(rows.shape[0], dtype=np.int8)
    graph = coo_matrix((data, (rows, cols)), shape=(n, n)).tocsr()
    graph.data[:] = 1
    return graph


@dataclass(frozen=True)
class StageLinks:
    """Confirmed pairs over catalog rows, and which of them a view or geometric stage found."""

    n: int
    every: object
    staged: object
    direct: NDArray[np.int64]

    @classmethod
    def build(
        cls, n: int, a: NDArray[np.int64], b: NDArray[np.int64], staged: NDArray[np.bool_]
    ) -> StageLinks | None:
        """Links from pairs of rows ``a``-``b``; ``staged`` marks the stage-found ones. None
        when no pair is staged (the guard is then the hash rule alone)."""
        if not staged.any():
            return None
        sa, sb = a[staged], b[staged]
        direct = np.unique(np.minimum(sa, sb) * n + np.maximum(sa, sb))
        return cls(n, _symmetric(n, a, b), _symmetric(n, sa, sb), direct)

    def near(self, rep: NDArray[np.int64], rows: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Whether each ``rows[k]`` is within :data:`MAX_STEPS` staged steps of ``rep[k]``."""
        key = np.minimum(rep, rows) * self.n + np.maximum(rep, rows)
        near: NDArray[np.bool_] = np.isin(key, self.direct)
        rest = np.flatnonzero(~near & (rep != rows))
        if rest.size:
            r, m = rep[rest], rows[rest]
            every, staged = self.every, self.staged
            shared = every[r].multiply(staged[m]) + staged[r].multiply(every[m])  # type: ignore[index]
            near[rest] = np.asarray(shared.sum(axis=1)).ravel() > 0
        return near
