"""The groups after a run, computed in memory before anything is written.

Incremental runs merge the groups new pairs bridge and never split one; a full recompute
groups every pair anew and keeps existing group ids where they still fit; semantic pairs then
merge groups whose representatives' embeddings match.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from dataops.dedup.grouping import DedupParams, group_pairs, rep_near
from dataops.dedup.index import Pairs
from dataops.dedup.links import StageLinks
from dataops.dedup.merges import plan_merges
from dataops.dedup.state import Catalog

# Temporary labels for groups this run creates, far above any real group id.
TEMP = 1 << 60


@dataclass
class Outcome:
    """The groups after this run, before they are written."""

    labels: np.ndarray
    reps: dict[int, int]
    merged_into: dict[int, int] = field(default_factory=dict)
    dissolved: list[int] = field(default_factory=list)
    split_reported: int = 0
    split_groups: list[int] = field(default_factory=list)
    refused: list[tuple[int, int]] = field(default_factory=list)
    next_temp: int = TEMP


def _split_chains(cat: Catalog, labels: np.ndarray, pairs: Pairs, loose_before: np.ndarray) -> int:
    """Components of previously ungrouped images that the guard did not put in one group."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(pairs) == 0:
        return 0
    a = cat.hashes.positions(pairs.i)
    b = cat.hashes.positions(pairs.j)
    keep = loose_before[a] & loose_before[b]
    if not keep.any():
        return 0
    n = len(cat.hashes)
    graph = coo_matrix((np.ones(int(keep.sum()), np.int8), (a[keep], b[keep])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    touched = np.unique(np.concatenate([a[keep], b[keep]]))
    return _components_not_whole(comp[touched], labels[touched])


def _components_not_whole(comp: np.ndarray, labels: np.ndarray) -> int:
    """How many components hold more than one label, or an unlabelled (-1) member."""
    order = np.lexsort((labels, comp))
    c, lab = comp[order], labels[order]
    mixed = c[1:][(c[1:] == c[:-1]) & (lab[1:] != lab[:-1])]
    return int(np.union1d(mixed, c[lab < 0]).shape[0])


def _relabel(labels: np.ndarray, remap: dict[int, int]) -> None:
    """Replace group labels in place, in one pass over the images."""
    if not remap:
        return
    keys = np.array(sorted(remap), dtype=np.int64)
    values = np.array([remap[k] for k in keys.tolist()], dtype=np.int64)
    moved = np.isin(labels, keys)
    labels[moved] = values[np.searchsorted(keys, labels[moved])]


def regroup_incremental(
    cat: Catalog, pairs: Pairs, params: DedupParams, links: StageLinks | None = None
) -> Outcome:
    plan = plan_merges(cat.hashes, cat.group_of, cat.reps, pairs, cat.rank, params, links)
    # What MergePlan.apply does, without a pass over every image per merge.
    labels = cat.group_of.copy()
    out = Outcome(labels=labels, reps=dict(cat.reps), next_temp=TEMP + len(plan.new_groups))
    for merge in plan.merges:
        for gone in merge.absorbed:
            out.merged_into[gone] = merge.target
            out.reps.pop(gone, None)
    _relabel(labels, out.merged_into)
    for merge in plan.merges:
        labels[cat.hashes.positions(merge.joined)] = merge.target
    for offset, members in enumerate(plan.new_groups):
        labels[cat.hashes.positions(members)] = TEMP + offset
        out.reps[TEMP + offset] = int(members[0])
    out.refused = [(int(a), int(b)) for a, b in plan.refused_bridges]
    out.split_reported = len(out.refused) + _split_chains(cat, labels, pairs, cat.group_of < 0)
    _promote_best(cat, out, [m.target for m in plan.merges], params, links)
    return out


def _promote_best(
    cat: Catalog,
    out: Outcome,
    touched: list[int],
    params: DedupParams,
    links: StageLinks | None,
) -> None:
    """A group that gained members takes its best-ranked member as representative when every
    member may stay with it, as a full recompute would choose (a letterboxed copy that joins
    later is larger than the original it joined)."""
    if not touched:
        return
    rows = np.flatnonzero(np.isin(out.labels, np.asarray(touched, dtype=np.int64)))
    order = rows[np.lexsort((cat.rank[rows], out.labels[rows]))]
    label = out.labels[order]
    starts = np.flatnonzero(np.r_[True, label[1:] != label[:-1]])
    best = np.repeat(order[starts], np.diff(np.r_[starts, order.size]))
    ok = rep_near(cat.hashes, best, order, params, links)
    for start, end in zip(starts.tolist(), [*starts[1:].tolist(), order.size], strict=True):
        gid = int(label[start])
        candidate = int(cat.ids[order[start]])
        if candidate != out.reps.get(gid) and ok[start:end].all():
            out.reps[gid] = candidate


def regroup_from_scratch(
    cat: Catalog, pairs: Pairs, params: DedupParams, links: StageLinks | None = None
) -> Outcome:
    """Group all pairs anew and keep existing group ids where they still fit.

    Each new group takes the id of the existing group it shares most members with (unless a
    better-ranked new group took it first); :func:`settle_old_groups` then accounts for the
    existing groups that did not keep their id.
    """
    grouping = group_pairs(cat.hashes, pairs, cat.rank, params, links)
    labels = np.full(len(cat.hashes), -1, dtype=np.int64)
    out = Outcome(labels=labels, reps={})
    out.split_reported = len(grouping.report.split_components)
    claimed: set[int] = set()
    # Grouping.groups() fails on an empty grouping, hence the guard.
    for members in grouping.groups() if len(grouping) else []:
        pos = cat.hashes.positions(members)
        olds = Counter(int(g) for g in cat.group_of[pos] if g >= 0)
        gid = next(
            (
                g
                for g, _ in sorted(olds.items(), key=lambda kv: (-kv[1], kv[0]))
                if g not in claimed
            ),
            None,
        )
        if gid is None:
            gid = out.next_temp
            out.next_temp += 1
        claimed.add(gid)
        labels[pos] = gid
        out.reps[gid] = int(members[0])
    return out


def settle_old_groups(cat: Catalog, out: Outcome) -> None:
    """After a full recompute: existing groups wholly inside another group are recorded as
    merged into it; those whose members now sit in several groups (or none) as split."""
    alive = set(np.unique(out.labels[out.labels >= 0]).tolist())
    before = np.flatnonzero(cat.group_of >= 0)
    moves = np.unique(np.stack([cat.group_of[before], out.labels[before]], axis=1), axis=0)
    olds, first, counts = np.unique(moves[:, 0], return_index=True, return_counts=True)
    for old, at, count in zip(olds.tolist(), first.tolist(), counts.tolist(), strict=True):
        after = int(moves[at, 1])
        if count > 1 or after < 0:
            out.split_groups.append(old)
            if old not in alive:
                out.dissolved.append(old)
                out.merged_into.pop(old, None)
        elif old not in alive:
            out.merged_into[old] = after
    out.split_reported += len(out.split_groups)


def semantic_merge(cat: Catalog, out: Outcome, sem: Pairs) -> None:
    """Merge groups and images whose embeddings match, without chaining.

    Nodes are the current groups and the ungrouped images. Within each connected component of
    the semantic pairs, groups come first (best representative first), then loose images; a
    node absorbs every other node whose representative matches its own representative, so
    every merged node is directly similar to the surviving representative. Groups keep their
    representative; loose images form a new group around the best-ranked one.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(sem) == 0:
        return
    labels = out.labels
    n = len(cat.hashes)
    similar = set(zip(sem.i.tolist(), sem.j.tolist(), strict=True))
    gids = np.unique(labels[labels >= 0])
    node = np.where(labels >= 0, np.searchsorted(gids, labels), gids.shape[0] + np.arange(n))
    a = node[cat.hashes.positions(sem.i)]
    b = node[cat.hashes.positions(sem.j)]
    distinct = a != b
    if not distinct.any():
        return
    total = gids.shape[0] + n
    graph = coo_matrix(
        (np.ones(int(distinct.sum()), np.int8), (a[distinct], b[distinct])), shape=(total, total)
    )
    _, comp = connected_components(graph, directed=False)
    touched = np.unique(np.concatenate([a[distinct], b[distinct]]))

    def rep_of(k: int) -> int:
        return out.reps[int(gids[k])] if k < gids.shape[0] else int(cat.ids[k - gids.shape[0]])

    def matches(x: int, y: int) -> bool:
        return (min(x, y), max(x, y)) in similar

    remap: dict[int, int] = {}
    order = touched[np.argsort(comp[touched], kind="stable")]
    bounds = np.flatnonzero(np.diff(comp[order])) + 1
    for part in np.split(order, bounds):
        nodes = part.tolist()
        nodes.sort(
            key=lambda k: (k >= gids.shape[0], int(cat.rank[cat.hashes.positions([rep_of(k)])[0]]))
        )
        while nodes:
            head, rest = nodes[0], nodes[1:]
            head_rep = rep_of(head)
            taken = [k for k in rest if matches(head_rep, rep_of(k))]
            nodes = [k for k in rest if k not in taken]
            if not taken:
                continue
            if head < gids.shape[0]:
                target = int(gids[head])
            else:
                target = out.next_temp
                out.next_temp += 1
                out.reps[target] = head_rep
                labels[head - gids.shape[0]] = target
            for k in taken:
                if k < gids.shape[0]:
                    gone = int(gids[k])
                    remap[gone] = target
                    out.merged_into[gone] = target
                    out.reps.pop(gone, None)
                else:
                    labels[k - gids.shape[0]] = target
    _relabel(labels, remap)
