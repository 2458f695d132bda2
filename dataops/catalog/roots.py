"""Which server-side paths an ingest started over HTTP may read.

A caller of the API names paths on our machine, so each must be absolute (or a URL), free
of ``..`` steps (even percent-encoded) and NUL bytes, and inside one of the configured
ingest roots; what folders, globs and list files expand to (through symlinks too) must stay
inside them as well. The worker checks every file against the roots again where it reads it.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote

from dataops.catalog.errors import IngestPathRefused
from dataops.catalog.schemas import IngestBody, IngestRequest
from dataops.storage import within_roots


def _has_parent_step(text: str) -> bool:
    return ".." in re.split(r"[\\/]", text)


def check_ingest_path(raw: str, roots: list[str]) -> str:
    """Only absolute paths (or URLs) inside a configured root; no `..`, even percent-encoded."""
    decoded = raw
    for _ in range(3):
        decoded = unquote(decoded)
    if "\x00" in decoded or _has_parent_step(raw) or _has_parent_step(decoded):
        raise IngestPathRefused(f"refused {raw!r}: '..' steps and NUL bytes are not allowed")
    if not roots:
        raise IngestPathRefused(
            "ingest over HTTP reads no paths until DATAOPS_API__INGEST_ROOTS lists the folders "
            "or URL prefixes it may read"
        )
    is_url = "://" in raw and not raw.startswith("file://")
    if not is_url and not os.path.isabs(raw.removeprefix("file://")):
        raise IngestPathRefused(f"refused {raw!r}: paths must be absolute")
    if not within_roots(raw, roots):
        raise IngestPathRefused(f"refused {raw!r}: not under an ingest root")
    return raw if is_url else os.path.realpath(raw.removeprefix("file://"))


def checked_request(body: IngestBody, roots: list[str]) -> IngestRequest:
    """The ingest a caller over HTTP asked for, confined to ``roots``; refused now, before a
    job is recorded, when a path is missing or anything it names lies outside the roots.

    The error names files as the request did (or as found below its folders), never where
    they resolve to.
    """
    from dataops.catalog.ingest import expand_locations

    paths = [check_ingest_path(p, roots) for p in body.paths]
    outside: list[str] = []
    locations = expand_locations(paths, roots, outside)
    outside += [given for uri, given in locations.items() if not within_roots(uri, roots)]
    if outside:
        raise IngestPathRefused(
            f"{len(outside)} of the files resolve outside the ingest roots, e.g. {outside[0]!r}"
        )
    return IngestRequest(
        paths=paths, source=body.source, copy_bytes=body.copy_bytes, roots=list(roots)
    )
