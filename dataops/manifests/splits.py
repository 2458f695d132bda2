"""Deterministic, leakage-safe split assignment.

A whole duplicate group goes to one split, picked from ``sha256(seed, group key)`` mapped to
a point in [0, 1) and looked up in the cumulative ratios of the split spec. The split of a
group is therefore a function of (group key, seed, spec) alone: adding images or groups
later never moves a group that already has a split, and the same catalog with the same
seed and spec always gives the same answer.

The caller must pass a group key that does not change when the group grows or is
re-grouped by a later dedup run, e.g. a persistent group id that merges keep, or the sha256
of the image that founded the group. A key derived from the current member list (its
size, its smallest sha256 after a merge, ...) would silently move groups between splits.

Stratification. Because every group draws its point independently and uniformly, every
stratum (class, site, device, ...) receives each split with probability equal to its ratio:
hash assignment is stratified in expectation for any stratum, without knowing the strata.
Forcing exact per-stratum counts would require ranking groups against one another, and
then adding one group could move another, which breaks stability; we do not do that. The
stratum is deliberately left out of the hash too: a relabel that changes a group's class
must never move it from test to train. :func:`stratum_balance` measures how far each
stratum is from its target (multinomial spread, reported as z-scores) so the datasheet can
list small strata as a known limitation.
"""

from __future__ import annotations

import hashlib
import math
import re
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from dataops.errors import DataopsError
from dataops.manifests.errors import ManifestError

SUM_TOLERANCE = 1e-6
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_SCALE = float(1 << 64)

K = TypeVar("K", bound=Hashable)
M = TypeVar("M", bound=Hashable)


class SplitSpecError(DataopsError):
    """A split spec the user typed cannot be used."""

    code = "bad_split_spec"


def parse_split_spec(spec: str) -> dict[str, float]:
    """Ordered ``{name: ratio}`` from ``train=0.8,val=0.1,test=0.1``; order fixes the intervals."""
    ratios: dict[str, float] = {}
    if not spec.strip():
        raise SplitSpecError("empty split spec: expected e.g. train=0.8,val=0.1,test=0.1")
    for part in spec.split(","):
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise SplitSpecError(f"bad split {part.strip()!r}: expected NAME=RATIO, e.g. train=0.8")
        if not _NAME.fullmatch(name):
            raise SplitSpecError(f"bad split name {name!r}: use letters, digits, '_' or '-'")
        if name in ratios:
            raise SplitSpecError(f"split {name!r} appears twice in {spec!r}")
        try:
            ratio = float(value)
        except ValueError:
            raise SplitSpecError(f"split {name!r}: ratio {value!r} is not a number") from None
        if not math.isfinite(ratio) or ratio <= 0:
            raise SplitSpecError(
                f"split {name!r}: ratio {value} must be > 0 (leave a split out instead of 0)"
            )
        ratios[name] = ratio
    total = math.fsum(ratios.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise SplitSpecError(f"split ratios sum to {total:.9g}, not 1: {spec!r}")
    return ratios


def normalize_split_spec(spec: str | Mapping[str, float]) -> dict[str, float]:
    """Validate a spec given either as text or as an ordered mapping."""
    if isinstance(spec, str):
        return parse_split_spec(spec)
    return parse_split_spec(format_split_spec(spec))


def format_split_spec(ratios: Mapping[str, float]) -> str:
    """Canonical text of a spec (float ``repr`` round-trips exactly), as stored in manifests."""
    return ",".join(f"{name}={float(ratio)!r}" for name, ratio in ratios.items())


def split_point(group_key: str | int, seed: int) -> float:
    """Uniform point in [0, 1) for a group: the first 64 bits of sha256(seed, key)."""
    digest = hashlib.sha256(f"{seed}\x00{group_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


class _Intervals:
    """Cumulative upper bounds of each split, the last one pinned to 1."""

    def __init__(self, ratios: Mapping[str, float]) -> None:
        self.names = list(ratios)
        total = math.fsum(ratios.values())
        bounds, acc = [], 0.0
        for ratio in ratios.values():
            acc += ratio
            bounds.append(acc / total)
        bounds[-1] = 1.0
        self.bounds = bounds

    def pick(self, point: float) -> str:
        return self.names[bisect_right(self.bounds, point)]


def assign_splits(
    group_keys: Iterable[K], seed: int, spec: str | Mapping[str, float]
) -> dict[K, str]:
    """Split of each group; stable under growth as long as the group keys are (see module)."""
    intervals = _Intervals(normalize_split_spec(spec))
    return {key: intervals.pick(split_point(str(key), seed)) for key in group_keys}


def assign_members(
    group_of: Mapping[M, K], seed: int, spec: str | Mapping[str, float]
) -> dict[M, str]:
    """Split of each member (image) from its group key, so no group straddles splits."""
    by_group = assign_splits(set(group_of.values()), seed, spec)
    return {member: by_group[key] for member, key in group_of.items()}


@dataclass(frozen=True, slots=True)
class StratumBalance:
    """Groups of one stratum per split against the ratio target."""

    stratum: str
    groups: int
    counts: dict[str, int]
    expected: dict[str, float]
    z: dict[str, float]

    @property
    def max_abs_z(self) -> float:
        return max((abs(v) for v in self.z.values()), default=0.0)


def stratum_balance(
    assignment: Mapping[K, str],
    strata: Mapping[K, str],
    spec: str | Mapping[str, float],
) -> list[StratumBalance]:
    """Per-stratum split counts with binomial z-scores, one stratum per group.

    ``strata`` maps each group key to one stratum: the caller decides it per group (e.g. the
    label of the representative), which keeps the group rule. Groups missing from ``strata``
    are an error rather than a silent "unknown" stratum.
    """
    ratios = normalize_split_spec(spec)
    missing = [key for key in assignment if key not in strata]
    if missing:
        shown = ", ".join(map(str, missing[:5]))
        raise DataopsError(f"{len(missing)} groups have no stratum (first: {shown})")
    counts: dict[str, dict[str, int]] = {}
    for key, split in assignment.items():
        if split not in ratios:
            raise DataopsError(f"group {key}: split {split!r} is not in the spec")
        per_split = counts.setdefault(strata[key], dict.fromkeys(ratios, 0))
        per_split[split] += 1
    result = []
    for stratum in sorted(counts):
        per_split = counts[stratum]
        n = sum(per_split.values())
        expected = {name: n * ratio for name, ratio in ratios.items()}
        z = {
            name: (per_split[name] - expected[name]) / math.sqrt(n * ratio * (1 - ratio))
            if ratio < 1
            else 0.0
            for name, ratio in ratios.items()
        }
        result.append(StratumBalance(stratum, n, per_split, expected, z))
    return result


def group_key(sha256: str, dup_group_id: int | None) -> str:
    """The key a row's split is drawn from: its duplicate group's id, else its own sha256.

    Both are stable: a group id is assigned once and kept while members join (dedup merges
    groups into a surviving id and never renumbers), and an image's sha256 is its identity.
    What a key cannot survive is a merge; a parent manifest (:func:`plan_splits`) covers that.
    """
    return sha256 if dup_group_id is None else f"group-{dup_group_id}"


@dataclass
class SplitPlan:
    """Each image's split and how it was decided."""

    splits: dict[str, str]
    inherited: int = 0
    joined: int = 0
    drawn: int = 0
    straddling: list[str] = field(default_factory=list)


def _group_split(counts: Mapping[str, int], ratios: Mapping[str, float]) -> str:
    """The split most of a group's parent members are in.

    A tie only happens when groups that were in different splits merged; the new member
    then goes to the smaller split, and between equal ones to the later in the spec
    (evaluation splits are the small ones and come last), so a new near-duplicate of a test
    image does not land in training.
    """
    order = list(ratios)
    return max(counts, key=lambda s: (counts[s], -ratios[s], order.index(s)))


def plan_splits(
    group_of: Mapping[str, str],
    seed: int,
    spec: str | Mapping[str, float],
    *,
    parent_split: Mapping[str, str] | None = None,
    parent_groups: Mapping[str, Mapping[str, int]] | None = None,
) -> SplitPlan:
    """Split of every image (sha256 -> group key), keeping a parent generation's splits.

    ``parent_split`` maps images of the parent to their split; ``parent_groups`` maps the
    current group key of each parent image to how many of its members are in each split.
    Images of the parent keep their split; a new image whose group has parent members takes
    that group's split (:func:`_group_split`); every other group is drawn by hash.
    ``straddling`` lists the group keys whose members ended up in more than one split,
    which only happens when groups that the parent had in different splits have merged.
    """
    ratios = normalize_split_spec(spec)
    parent_split = parent_split or {}
    parent_groups = parent_groups or {}
    unknown = sorted(set(parent_split.values()) - ratios.keys())
    if unknown:
        raise ManifestError(
            f"the parent has splits {unknown}, which are not in {format_split_spec(ratios)!r}; "
            "keep the parent's split names"
        )
    fresh = {key for sha, key in group_of.items() if sha not in parent_split}
    drawn_keys = {key for key in fresh if key not in parent_groups}
    by_hash = assign_splits(drawn_keys, seed, ratios)
    joined_split = {key: _group_split(parent_groups[key], ratios) for key in fresh - drawn_keys}
    plan = SplitPlan(splits={})
    # Only groups with parent members can straddle: drawn groups get one split for all.
    seen: dict[str, set[str]] = defaultdict(set)
    for sha, key in group_of.items():
        if sha in parent_split:
            split = parent_split[sha]
            plan.inherited += 1
        elif key in joined_split:
            split = joined_split[key]
            plan.joined += 1
        else:
            plan.splits[sha] = by_hash[key]
            plan.drawn += 1
            continue
        plan.splits[sha] = split
        seen[key].add(split)
    plan.straddling = sorted(key for key, splits in seen.items() if len(splits) > 1)
    return plan
