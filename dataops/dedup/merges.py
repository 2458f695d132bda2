"""Incremental runs: how existing groups change when new pairs arrive, merged but never split.

An ungrouped image joins each linked group whose representative it matches (two or more: a
bridge that merges them); links that match only a non-representative member are refused and
reported, the anti-chaining rule of :mod:`dataops.dedup.grouping`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from dataops.dedup.grouping import (
    DedupParams,
    ImageHashes,
    graph_components,
    guarded_groups,
    pair_graph,
    rep_near,
)
from dataops.dedup.index import Pairs
from dataops.dedup.links import StageLinks


@dataclass(frozen=True)
class GroupMerge:
    """Existing group ``target`` absorbs whole groups and previously ungrouped images."""

    target: int
    absorbed: tuple[int, ...]
    joined: np.ndarray


@dataclass(frozen=True)
class MergePlan:
    """What an incremental run changes; nothing in it splits an existing group."""

    merges: tuple[GroupMerge, ...]
    new_groups: tuple[np.ndarray, ...]
    refused_bridges: tuple[tuple[int, int], ...]

    def is_empty(self) -> bool:
        """True when the catalog's groups are already right."""
        return not self.merges and not self.new_groups

    def apply(
        self, ids: np.ndarray | Sequence[int], group_of: np.ndarray | Sequence[int], next_id: int
    ) -> np.ndarray:
        """New group assignment for ``ids``; new groups are numbered from ``next_id``."""
        ids_arr = np.asarray(ids, dtype=np.int64)
        out = np.array(group_of, dtype=np.int64, copy=True)
        absorbed = np.array([g for m in self.merges for g in m.absorbed], dtype=np.int64)
        into = np.array([m.target for m in self.merges for _ in m.absorbed], dtype=np.int64)
        _assign(out, out, absorbed, into)
        members = [m.joined for m in self.merges] + list(self.new_groups)
        labels = [m.target for m in self.merges] + [
            next_id + k for k in range(len(self.new_groups))
        ]
        if members:
            sizes = [len(m) for m in members]
            _assign(out, ids_arr, np.concatenate(members), np.repeat(labels, sizes))
        return out


def _assign(out: np.ndarray, keys: np.ndarray, find: np.ndarray, values: np.ndarray) -> None:
    """``out[k] = values[m]`` wherever ``keys[k] == find[m]`` (``find`` unique), in one pass."""
    if find.size == 0 or keys.size == 0:
        return
    order = np.argsort(find, kind="stable")
    find, values = find[order], values[order]
    at = np.minimum(np.searchsorted(find, keys), find.shape[0] - 1)
    hit = find[at] == keys
    out[hit] = values[at[hit]]


class _Merger:
    """Union-find over the existing groups of one component; the best-ranked rep wins."""

    def __init__(self, groups: list[int], key: Mapping[int, tuple[int, int]]) -> None:
        self.parent = {g: g for g in groups}
        self.key = key

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, g: int, h: int) -> None:
        rg, rh = self.find(g), self.find(h)
        if rg != rh:
            keep, drop = sorted((rg, rh), key=self.key.__getitem__)
            self.parent[drop] = keep


@dataclass(frozen=True)
class _Graph:
    """The pairs over nodes: one node per existing group, then one per ungrouped image."""

    gids: np.ndarray
    comp: np.ndarray
    touched: np.ndarray
    rep_rows: np.ndarray
    image_graph: object
    group_links: dict[int, set[tuple[int, int]]]

    @property
    def n_groups(self) -> int:
        return int(self.gids.shape[0])


def _graph(
    hashes: ImageHashes, group_arr: np.ndarray, representatives: Mapping[int, int], pairs: Pairs
) -> _Graph:
    from scipy.sparse.csgraph import connected_components

    n = len(hashes)
    gids = np.unique(group_arr[group_arr >= 0])
    n_groups = int(gids.shape[0])
    node = np.where(group_arr >= 0, np.searchsorted(gids, group_arr), n_groups + np.arange(n))
    pos_i = hashes.positions(pairs.i)
    pos_j = hashes.positions(pairs.j)
    a, b = node[pos_i], node[pos_j]
    distinct = a != b
    a, b = a[distinct], b[distinct]
    _, comp = connected_components(pair_graph(n_groups + n, a, b), directed=False)
    group_links: dict[int, set[tuple[int, int]]] = {}
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        if x < n_groups and y < n_groups:
            group_links.setdefault(int(comp[x]), set()).add((min(x, y), max(x, y)))
    return _Graph(
        gids=gids,
        comp=comp,
        touched=np.unique(np.concatenate([a, b])),
        rep_rows=hashes.positions([representatives[int(g)] for g in gids]),
        image_graph=pair_graph(n, pos_i, pos_j),
        group_links=group_links,
    )


@dataclass
class _Plan:
    merges: list[GroupMerge] = field(default_factory=list)
    new_groups: list[np.ndarray] = field(default_factory=list)
    refused: list[tuple[int, int]] = field(default_factory=list)


def plan_merges(
    hashes: ImageHashes,
    group_of: np.ndarray | Sequence[int],
    representatives: Mapping[int, int],
    pairs: Pairs,
    rank: np.ndarray | Sequence[int],
    params: DedupParams | None = None,
    links: StageLinks | None = None,
) -> MergePlan:
    """How existing groups change when ``pairs`` (confirmed, e.g. new images) arrive.

    ``group_of`` is aligned with ``hashes.ids`` (-1 = in no group); ``representatives`` maps
    each group id to its representative image id. An ungrouped image joins every linked group
    whose representative it matches; matching two or more is a bridge and merges them. Groups
    linked directly merge when their representatives match. Links that meet neither rule
    (the image only matches a non-representative member) are refused and reported, the same
    anti-chaining rule as :func:`group_pairs` (``links``: staged pairs loosen it the same
    way). Images that join no group form new guarded groups among themselves.
    """
    params = params or DedupParams()
    rank_arr = np.asarray(rank)
    group_arr = np.asarray(group_of, dtype=np.int64).reshape(-1)
    graph = _graph(hashes, group_arr, representatives, pairs)
    plan = _Plan()
    touched = graph.touched
    for c in np.unique(graph.comp[touched]):
        nodes = touched[graph.comp[touched] == c]
        _plan_component(hashes, graph, int(c), nodes, rank_arr, params, links, plan)
    plan.merges.sort(key=lambda m: m.target)
    plan.new_groups.sort(key=lambda g: int(g[0]))
    return MergePlan(tuple(plan.merges), tuple(plan.new_groups), tuple(plan.refused))


def _plan_component(
    hashes: ImageHashes,
    graph: _Graph,
    c: int,
    nodes: np.ndarray,
    rank: np.ndarray,
    params: DedupParams,
    links: StageLinks | None,
    plan: _Plan,
) -> None:
    """One connected component: merge linked groups whose representatives match, let loose
    images join the groups whose representatives they match, group the rest anew."""
    gids, rep_rows, n_groups = graph.gids, graph.rep_rows, graph.n_groups
    group_nodes = nodes[nodes < n_groups]
    loose = nodes[nodes >= n_groups] - n_groups
    key = {int(gids[k]): (int(rank[rep_rows[k]]), int(gids[k])) for k in group_nodes}
    merger = _Merger(sorted(key, key=key.__getitem__), key)
    for x, y in sorted(graph.group_links.get(c, ())):
        if rep_near(hashes, rep_rows[[x]], rep_rows[[y]], params, links)[0]:
            merger.union(int(gids[x]), int(gids[y]))
    joined: dict[int, list[int]] = {}
    unplaced: list[int] = []
    for row in loose[np.argsort(rank[loose], kind="stable")]:
        ok = rep_near(
            hashes, np.full(group_nodes.shape[0], row), rep_rows[group_nodes], params, links
        )
        hits = [int(g) for g in gids[group_nodes[ok]]]
        if not hits:
            unplaced.append(int(row))
            continue
        for g in hits[1:]:
            merger.union(hits[0], g)
        joined.setdefault(hits[0], []).append(int(row))
    _record_merges(hashes, merger, key, joined, plan)
    if len(unplaced) > 1:
        rows = np.array(sorted(unplaced), dtype=np.int64)
        for part in graph_components(graph.image_graph, rows):
            if part.shape[0] < 2:
                continue
            for group in guarded_groups(hashes, graph.image_graph, part, rank, params, links):
                if group.shape[0] > 1:
                    plan.new_groups.append(hashes.ids[group])


def _record_merges(
    hashes: ImageHashes,
    merger: _Merger,
    key: Mapping[int, tuple[int, int]],
    joined: Mapping[int, list[int]],
    plan: _Plan,
) -> None:
    """The merges of one component; groups linked but not merged are refused bridges."""
    members: dict[int, tuple[list[int], list[int]]] = {}
    for g in merger.parent:
        absorbed_into = members.setdefault(merger.find(g), ([], []))
        if merger.find(g) != g:
            absorbed_into[0].append(g)
        absorbed_into[1].extend(joined.get(g, []))
    roots = sorted(members, key=key.__getitem__)
    plan.refused.extend((roots[0], other) for other in roots[1:])
    for root in roots:
        absorbed, rows = members[root]
        if absorbed or rows:
            plan.merges.append(
                GroupMerge(
                    target=root,
                    absorbed=tuple(sorted(absorbed)),
                    joined=np.sort(hashes.ids[np.array(rows, dtype=np.int64)]),
                )
            )
