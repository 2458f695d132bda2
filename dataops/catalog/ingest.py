"""Ingest pipeline: expand inputs, inspect files in a process pool, write in batches.

Every batch commits on its own, so an interrupted run leaves a consistent catalog and a
re-run only does the rest: known locations whose bytes still hash the same are skipped
without decoding, and known bytes under a new path only gain a location. With ingest roots
(requests over HTTP), every file is checked against them again where it is opened.
"""

from __future__ import annotations

import csv
import glob
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

from dataops.catalog import service
from dataops.catalog.errors import IngestInputError
from dataops.catalog.schemas import IngestResult
from dataops.catalog.validate import (
    REFUSED,
    UNCHANGED,
    Inspection,
    InspectOptions,
    inspect_uri,
)
from dataops.config import get_settings
from dataops.db import Transaction
from dataops.storage import RefusedLocation, read_uri, within_roots

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
LIST_SUFFIXES = {".txt", ".csv", ".lst"}
_GLOB_CHARS = set("*?[")


def _is_url(text: str) -> bool:
    return "://" in text and not text.startswith("file://")


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _read_list(path: Path, roots: Sequence[str] | None) -> list[tuple[str, str]]:
    """A text file (one path/URI per line) or a CSV whose `uri`/`path` column (or first) lists
    them: (location, the entry as written). Read like an image: inside the roots, no link
    planted after the check, never a FIFO."""
    try:
        text = read_uri(str(path), roots).decode("utf-8-sig")
    except RefusedLocation as exc:
        raise IngestInputError(f"{path}: the list file is refused: {exc}") from exc
    except OSError as exc:
        raise IngestInputError(f"{path}: cannot read the list file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise IngestInputError(f"{path}: the list file is not UTF-8 text") from exc
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if path.suffix.lower() != ".csv":
        return [(_absolute(line.strip(), path.parent), line.strip()) for line in lines]
    rows = list(csv.reader(lines))
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    column = next((header.index(c) for c in ("uri", "path", "file") if c in header), None)
    body = rows[1:] if column is not None else rows
    col = column or 0
    return [
        (_absolute(row[col].strip(), path.parent), row[col].strip())
        for row in body
        if len(row) > col and row[col].strip()
    ]


def _absolute(item: str, base: Path) -> str:
    if _is_url(item):
        return item
    item = item.removeprefix("file://")
    path = Path(item).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _walk(root: Path, shown: str) -> Iterator[tuple[str, str]]:
    """(location, the path as found below the folder the user named) for each image file."""
    # Symlinked folders are not entered, so below a resolved root only file links need resolving.
    real_root = str(root.resolve())
    for dirpath, dirnames, filenames in os.walk(real_root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            if _is_image_name(name):
                path = os.path.join(dirpath, name)
                given = os.path.join(shown, os.path.relpath(path, real_root))
                yield (os.path.realpath(path) if os.path.islink(path) else path), given


def _expand_url(url: str) -> list[str]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if fs.isdir(root):
        return [f"{protocol}://{p}" for p in sorted(fs.find(root)) if _is_image_name(p)]
    return [url]


def expand_inputs(inputs: Iterable[str]) -> list[str]:
    """Folders (recursive), globs, list files, image files and fsspec URLs → unique locations."""
    return list(expand_locations(inputs))


def expand_locations(
    inputs: Iterable[str],
    roots: Sequence[str] | None = None,
    refused: list[str] | None = None,
) -> dict[str, str]:
    """Unique locations, each with the path as the user gave it (or as found below a folder
    they gave): errors show that one, never where a link resolves to. With ``roots``, inputs
    and glob matches outside them are not expanded (no listing of folders elsewhere) but
    added to ``refused``; what the rest expands to is for the caller to check."""
    seen: dict[str, str] = {}
    refused = refused if refused is not None else []
    for raw in inputs:
        found: list[tuple[str, str]]
        if roots is not None and not within_roots(raw, roots):
            refused.append(raw)
            continue
        if _is_url(raw):
            found = [(url, url) for url in _expand_url(raw)]
        elif _GLOB_CHARS & set(raw):
            matches = sorted(glob.glob(os.path.expanduser(raw), recursive=True))
            if not matches:
                raise IngestInputError(f"{raw}: the pattern matches no files")
            found = []
            for match in matches:
                path = Path(match)
                if roots is not None and not within_roots(match, roots):
                    refused.append(match)
                elif path.is_dir():
                    found.extend(_walk(path, match))
                elif _is_image_name(match):
                    found.append((str(path.resolve()), match))
        else:
            path = Path(raw.removeprefix("file://")).expanduser()
            if not path.exists():
                raise IngestInputError(f"{raw}: no such file or folder")
            if path.is_dir():
                found = list(_walk(path, raw))
            elif path.suffix.lower() in LIST_SUFFIXES:
                found = _read_list(path, roots)
            else:
                found = [(str(path.resolve()), raw)]
        for uri, given in found:
            seen.setdefault(uri, given)
    return seen


def read_attributes(path: str | None) -> dict[str, dict[str, str]]:
    """Per-image attributes keyed by location: CSV with a `path`/`uri` (or `file` = basename) column."""
    if not path:
        return {}
    csv_path = Path(path)
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip() for f in reader.fieldnames or []]
            key = next((f for f in ("uri", "path", "file") if f in fields), None)
            if key is None:
                raise IngestInputError(
                    f"{path}: the attributes CSV needs a 'path', 'uri' or 'file' column "
                    f"(found: {', '.join(fields) or 'no header'})"
                )
            out: dict[str, dict[str, str]] = {}
            for line, row in enumerate(reader, start=2):
                ref = (row.get(key) or "").strip()
                if not ref:
                    raise IngestInputError(f"{path}: line {line}: empty '{key}' value")
                attrs = {k.strip(): (v or "").strip() for k, v in row.items() if k and k != key}
                name = ref if key == "file" else _absolute(ref, csv_path.parent)
                out[name] = attrs
            return out
    except OSError as exc:
        raise IngestInputError(f"{path}: cannot read the attributes file ({exc})") from exc


def _attributes_for(uri: str, table: dict[str, dict[str, str]]) -> dict[str, str] | None:
    return table.get(uri) or table.get(os.path.basename(uri))


def _pool_size(configured: int) -> int:
    if multiprocessing.current_process().daemon:
        return 0  # a Celery prefork child cannot have children; the worker pool is the parallelism
    return configured or (os.cpu_count() or 1)


def _chunksize(files: int, workers: int) -> int:
    """Up to 16 files per task (fewer round trips) but at least 4 tasks per worker, so that a
    handful of large photos is spread over every worker instead of landing on one."""
    return max(1, min(16, files // (workers * 4)))


def ingest(
    inputs: list[str],
    *,
    source: str | None = None,
    attributes_csv: str | None = None,
    copy: bool = False,
    roots: list[str] | None = None,
    actor: str | None = None,
    transaction: Transaction,
    progress: Callable[[int, int], None] | None = None,
    on_batch: Callable[[Any, service.RecordCounts], None] | None = None,
) -> IngestResult:
    """Ingest files; with ``roots``, only files inside them, checked again as each is read."""
    settings = get_settings()
    refused: list[str] = []
    locations = expand_locations(inputs, roots, refused)
    attributes = read_attributes(attributes_csv)
    options = InspectOptions(
        max_pixels=settings.ingest.max_pixels,
        exif_allowlist=frozenset(settings.ingest.exif_allowlist),
        copy_to=settings.resolved_storage_url if copy else None,
        roots=tuple(roots) if roots is not None else None,
    )
    uris = list(locations)
    if roots is not None:
        uris = [u for u in uris if within_roots(u, roots)]
        refused += [given for uri, given in locations.items() if not within_roots(uri, roots)]
    result = IngestResult(files=len(uris) + len(refused), refused=len(refused))
    result.errors.extend(f"{given}: refused: outside the ingest roots" for given in refused)
    with transaction() as session:
        source_id = service.get_or_create_source(session, source, actor=actor) if source else None
    with transaction() as session:
        known = service.known_locations(session, uris)
    done = result.refused
    if progress:
        progress(done, result.files)
    run = partial(inspect_uri, options=options)
    workers = _pool_size(settings.ingest.workers)
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        # The pool keeps decoding while finished results are written batch by batch.
        expected = [known.get(u) for u in uris]
        stream = (
            pool.map(run, uris, expected, chunksize=_chunksize(len(uris), workers))
            if pool
            else map(run, uris, expected)
        )
        while inspections := list(islice(stream, settings.ingest.batch_size)):
            _count_unrecorded(result, inspections, locations)
            with transaction() as session:
                service.clear_stale(
                    session,
                    {i.uri: i.sha256 for i in inspections if i.status == UNCHANGED and i.sha256},
                )
                counts = service.record_inspections(
                    session,
                    [i for i in inspections if i.sha256 and i.status != UNCHANGED],
                    source_id=source_id,
                    attributes={
                        i.uri: a for i in inspections if (a := _attributes_for(i.uri, attributes))
                    },
                )
                if on_batch is not None:  # in the batch's own transaction
                    on_batch(session, counts)
            result.new += counts.new
            result.skipped += counts.existing
            result.quarantined += counts.quarantined
            result.locations_added += counts.locations_added
            done += len(inspections)
            if progress:
                progress(done, result.files)
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    return result


def _count_unrecorded(
    result: IngestResult, inspections: list[Inspection], locations: dict[str, str]
) -> None:
    """Unchanged files are skipped; refused and unreadable ones reported as the user named them."""
    for item in inspections:
        if item.status == UNCHANGED:
            result.skipped += 1
        elif item.sha256 is None:
            if item.status == REFUSED:
                result.refused += 1
            else:
                result.unreadable += 1
            result.errors.append(f"{locations.get(item.uri, item.uri)}: {item.reason}")
