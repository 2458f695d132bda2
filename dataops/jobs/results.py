"""A finished job's result as a reader sees it: links to what the job made (an audit's
report, a batch, a manifest) and its plain figures, never blob-store keys nobody can open."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel

# Result fields that name blobs in storage (report_html_key, body_key, rows_files, ...).
_STORAGE_SUFFIXES = ("key", "keys", "path", "files")


class ResultLink(BaseModel):
    label: str
    href: str


class ResultFact(BaseModel):
    name: str
    value: str


class JobResultView(BaseModel):
    links: list[ResultLink]
    facts: list[ResultFact]


def _is_storage(name: str) -> bool:
    return name.lower().endswith(_STORAGE_SUFFIXES)


def _clean(value: Any) -> Any:
    """``value`` without any storage field, however deep."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not _is_storage(str(k))}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _links(kind: str, result: dict[str, Any]) -> list[ResultLink]:
    links: list[ResultLink] = []
    if kind == "audit" and isinstance(result.get("id"), int):
        audit = result["id"]
        links += [
            ResultLink(label=f"Audit {audit}", href=f"/console/audits/{audit}"),
            ResultLink(label="Audit report", href=f"/console/audits/{audit}/report.html"),
        ]
    if kind == "select" and isinstance(result.get("id"), int):
        links.append(
            ResultLink(label=f"Batch {result['id']}", href=f"/console/batches/{result['id']}")
        )
    if kind == "manifest" and isinstance(result.get("name"), str):
        name = result["name"]
        links.append(
            ResultLink(label=f"Manifest {name}", href=f"/console/manifests/{quote(name, safe='')}")
        )
    for field, label in (("batch_id", "Batch"), ("relabel_batch_id", "Relabel batch")):
        if isinstance(result.get(field), int):
            links.append(
                ResultLink(
                    label=f"{label} {result[field]}", href=f"/console/batches/{result[field]}"
                )
            )
    return links


def result_view(kind: str, result: dict[str, Any] | None) -> JobResultView | None:
    """What the console shows of a job's result: links first, then every other field
    (nested values as compact JSON), storage keys left out."""
    if result is None:
        return None
    facts = [
        ResultFact(
            name=str(name),
            value=value if isinstance(value, str) else json.dumps(value, default=str),
        )
        for name, value in _clean(result).items()
    ]
    return JobResultView(links=_links(kind, result), facts=facts)
