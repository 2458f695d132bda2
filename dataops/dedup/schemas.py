"""Dedup results as the CLI and the API return them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class DedupRunRequest(BaseModel):
    """The options of `dataops dedup run`; the match thresholds come from DATAOPS_DEDUP__*."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"radius": 10, "semantic": False, "full": False},
                {"semantic": True},
            ]
        },
    )

    radius: int | None = Field(
        default=None, ge=0, le=32, description="pHash Hamming radius (default: dedup.radius)."
    )
    semantic: bool = Field(
        default=False,
        description="Also match model embeddings (needs a scored model with an embedding).",
    )
    full: bool = Field(default=False, description="Recompute every pair and reconcile the groups.")


class DedupSummary(BaseModel):
    """One run: what was looked at, what was found and what changed."""

    images: int = Field(description="Images with hashes in the catalog (status ok).")
    new_images: int = Field(
        description="Images queried this run: those the index had not seen (all with `full`)."
    )
    pairs: int = Field(description="Confirmed near-duplicate pairs found by this run.")
    stage_pairs: dict[str, int] = Field(
        default_factory=dict,
        description="Of those pairs, how many each stage matched (hash, view, geometric).",
    )
    views_computed: int = Field(
        default=0, description="Images whose view hashes this run computed (once per image)."
    )
    geometric_checks: int = Field(
        default=0, description="Candidate pairs checked on local features (ORB + RANSAC)."
    )
    edges_added: int = Field(description="Pairs stored for the first time.")
    groups: int = Field(description="Duplicate groups in the catalog after the run.")
    new_groups: int = Field(description="Groups created by this run.")
    merged: int = Field(description="Existing groups absorbed into another by a bridge.")
    split_reported: int = Field(
        description=(
            "Components the anti-chaining guard kept apart (chains, refused bridges) and, "
            "with `full`, existing groups that a recompute splits."
        )
    )
    oversize_groups: list[list[int]] = Field(
        default_factory=list, description="[representative, size] of groups over the size limit."
    )
    split_groups: list[int] = Field(
        default_factory=list, description="Existing groups a `full` recompute split."
    )
    semantic_pairs: int = Field(default=0, description="Pairs from model embeddings.")
    full: bool = Field(description="All pairs were recomputed.")
    rebuilt_index: bool = Field(description="The index file disagreed with the catalog.")
    rebuild_reason: str | None = None
    shards: int = Field(description="Query shards (several run on separate workers).")
    gpu: bool = Field(description="Searches ran on a GPU.")
    changed: bool = Field(description="The run wrote anything to the catalog.")
    seconds: float


class GroupMember(BaseModel):
    """The `dedup groups` member shape of the CLI contract."""

    image_id: int
    uri: str
    sha256: str


class GroupOut(BaseModel):
    id: int
    representative: int | None
    size: int = Field(description="Members in the group (members may list fewer).")
    members: list[GroupMember]


class MemberDetail(GroupMember):
    width: int | None
    height: int | None
    distance: int | None = Field(
        description="pHash distance to the representative (mirrored when that is closer)."
    )
    stage: str | None = Field(
        default=None,
        description="Dedup stage that paired the member with the representative (hash, view, "
        "geometric, semantic); null when they are linked through other members.",
    )


class GroupDetail(BaseModel):
    id: int
    representative: int | None
    size: int
    max_distance: int
    methods: list[str]
    merged_into: int | None = Field(description="Set when a bridge merged this group away.")
    created_at: datetime
    updated_at: datetime
    members: list[MemberDetail]


class GroupPage(BaseModel):
    groups: list[GroupOut]
    limit: int
    offset: int


class Leak(BaseModel):
    """A duplicate group whose members sit in more than one split."""

    group_id: int
    representative: int | None
    splits: dict[str, list[int]] = Field(description="Split name -> member image ids.")


class LeakReport(BaseModel):
    source: str = Field(description="`manifest:<name>` or `attribute:<name>`.")
    groups_checked: int
    total_leaks: int = Field(default=0, description="Leaking groups in all (leaks may be a page).")
    leaks: list[Leak]
