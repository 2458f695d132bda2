"""Shapes the CLI and API print for manifests (the ``manifest create|show`` contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class ManifestSummary(BaseModel):
    """One named manifest; ``id`` is the content hash, ``splits`` the image count per split."""

    name: str
    id: str
    splits: dict[str, int]
    path: str
    split_spec: str
    seed: int
    parent: str | None
    selection: dict[str, Any]
    body_key: str
    parquet_key: str
    datasheet_key: str | None
    rows_files: dict[str, str] = {}
    created_by: str | None
    created_at: datetime


class ManifestOut(ManifestSummary):
    """``manifest create`` and ``manifest list``: the record with its row count."""

    rows: int


class RowOut(BaseModel):
    sha256: str
    split: str
    label: dict[str, Any] | None
    dup_group_id: int | None


class ManifestDetail(ManifestSummary):
    """``manifest show``: the record, every name sharing its content, and its rows."""

    row_count: int
    names: list[str]
    rows: list[RowOut]


class ImageProblem(BaseModel):
    """An image a manifest references that is missing or no longer has its recorded bytes."""

    sha256: str
    location: str
    problem: str
    actual_sha256: str | None = None


class VerifyReport(BaseModel):
    name: str
    id: str
    ok: bool
    body_only: bool
    problems: list[str]
    images_checked: int
    missing: list[ImageProblem]
    changed: list[ImageProblem]


class SplitMove(BaseModel):
    sha256: str
    before: str
    after: str


class Relabel(BaseModel):
    sha256: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class DiffReport(BaseModel):
    """What changed from manifest ``a`` to ``b``; any split move of a shared image is a leak."""

    a: str
    b: str
    a_id: str
    b_id: str
    counts: dict[str, int]
    added: list[str]
    removed: list[str]
    relabelled: list[Relabel]
    split_moves: list[SplitMove]
    straddling_groups: list[int]
    leak: bool
    class_counts: dict[str, dict[str, dict[str, int]]]
    truncated: bool
