"""Export folders that dataops owns: staged beside the target, swapped in whole.

An export is written into a temporary folder next to its target and renamed into place only
when complete, so a crash or a refused image never leaves a half-written export and stale
files from an earlier export never survive. The target must be missing, empty, or an earlier
dataops export (it holds the marker file); any other folder is refused, never overwritten.
The index (``index.jsonl``) lists every exported file with its own sha256 beside the
catalog sha256 of the image it came from; they differ only for images turned upright.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dataops.errors import DataopsError
from dataops.manifests.errors import escaped

MARKER = ".dataops-export"
INDEX = "index.jsonl"
# Label files the formats write next to the images; everything else under a subfolder is listed.
_DATA_FOLDERS = ("annotations/", "Annotations/", "ImageSets/", "labels/")


def _is_data_file(rel: str) -> bool:
    return rel.startswith(_DATA_FOLDERS)


class ExportTargetError(DataopsError):
    """The export target is a folder dataops does not own."""


def check_target(root: Path) -> None:
    """Refuse a target that is a file or a non-empty folder without the marker."""
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        raise ExportTargetError(
            f"{escaped(root)} is not a folder: choose a new or empty folder for {{out}}",
            fields=("out",),
        )
    if root.is_dir() and not (root / MARKER).is_file() and any(root.iterdir()):
        raise ExportTargetError(
            f"{escaped(root)} is not empty and was not written by dataops export (no {MARKER}): "
            "choose a new or empty folder for {out}",
            fields=("out",),
        )


def previous_index(root: Path) -> dict[str, dict[str, Any]]:
    """Entries of an earlier export at ``root`` by relative path (empty when there is none)."""
    path = root / INDEX
    if not (root / MARKER).is_file() or not path.is_file():
        return {}
    entries: dict[str, dict[str, Any]] = {}
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            entries[entry["path"]] = entry
    except (ValueError, KeyError, TypeError):
        return {}
    return entries


def _swap(staged: Path, root: Path) -> None:
    if not root.exists():
        os.rename(staged, root)
        return
    old = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.old-"))
    os.rename(root, old / "export")
    try:
        os.rename(staged, root)
    except BaseException:
        os.rename(old / "export", root)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_export(destination: str | os.PathLike[str], marker: Mapping[str, Any]) -> Iterator[Path]:
    """A fresh folder to write the export into; it replaces ``destination`` on success."""
    root = Path(destination).absolute()
    check_target(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.tmp-"))
    try:
        yield staged
        (staged / MARKER).write_text(json.dumps(dict(marker), sort_keys=True) + "\n")
        staged.chmod(0o755)
        check_target(root)
        _swap(staged, root)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def write_index(staged: Path, entries: list[dict[str, Any]]) -> None:
    lines = (json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in entries)
    (staged / INDEX).write_text("".join(lines), encoding="utf-8")


def verify_export(destination: str | os.PathLike[str], limit: int = 20) -> list[str]:
    """Problems of an export folder against its index: missing, changed or unlisted files.

    A file must hash to its listed sha256, and one that was not turned upright must also
    hash to its catalog sha256, so a copied export can be checked without the catalog.
    """
    root = Path(destination)
    if not (root / MARKER).is_file():
        return [f"{root} is not a dataops export (no {MARKER})"]
    problems: list[str] = []
    listed = previous_index(root)
    if not listed and (root / INDEX).is_file() and (root / INDEX).stat().st_size:
        return [f"{root / INDEX} cannot be read"]
    for rel, entry in sorted(listed.items()):
        path = root / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        with open(path, "rb") as handle:
            actual = hashlib.file_digest(handle, "sha256").hexdigest()
        if actual != entry["sha256"]:
            problems.append(f"{rel}: sha256 {actual} is not the listed {entry['sha256']}")
        elif entry.get("upright") is None and actual != entry["catalog_sha256"]:
            problems.append(
                f"{rel}: sha256 {actual} is not the catalog's {entry['catalog_sha256']}"
            )
    if (root / INDEX).is_file():
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and "/" in rel and rel not in listed and not _is_data_file(rel):
                problems.append(f"{rel}: not in {INDEX}")
    return problems[:limit]
