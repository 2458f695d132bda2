"""Label Studio's own image paths mapped to where the images were ingested from.

A path map entry is ``PREFIX=ROOT``: a task whose ``data.image`` starts with PREFIX is looked
up as ROOT + the rest. ``/data/local-files/?d=PATH`` is read as ``/data/local-files/PATH``
(URL-decoded), and ``http(s)://host/data/...`` as ``/data/...``, so one prefix covers every
form.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from dataops.errors import DataopsError
from dataops.labeling.payloads import text_problem

_LOCAL_FILES = "/data/local-files/"


def path_map_problem(spec: str) -> str | None:
    """What is wrong with one ``PREFIX=ROOT`` entry (the first ``=`` separates them)."""
    prefix, sep, root = spec.partition("=")
    if not sep or not prefix.strip() or not root.strip() or text_problem(spec):
        return (
            f"entries are PREFIX=ROOT, got {spec!r} (for example "
            "/data/upload/=/srv/label-studio/media/upload/ or /data/local-files/=/mnt/images/)"
        )
    return None


def parse_path_map(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``PREFIX=ROOT`` options as pairs; the first ``=`` separates them."""
    pairs: list[tuple[str, str]] = []
    for spec in specs:
        if problem := path_map_problem(spec):
            literal = problem.replace("{", "{{").replace("}", "}}")
            raise DataopsError(f"{{path_map}} {literal}", fields=("path_map",))
        prefix, _, root = spec.partition("=")
        pairs.append((prefix.strip(), root.strip()))
    return pairs


def labelstudio_path(uri: str) -> str:
    """Label Studio's forms of one file as one path: ``http(s)://host/data/...`` becomes
    ``/data/...`` and ``/data/local-files/?d=PATH`` becomes ``/data/local-files/PATH``."""
    text = uri
    if text.startswith(("http://", "https://")):
        parts = urlsplit(text)
        if parts.path.startswith("/data/"):
            text = parts.path + (f"?{parts.query}" if parts.query else "")
    if text.startswith(_LOCAL_FILES + "?d="):
        text = _LOCAL_FILES + unquote(text[len(_LOCAL_FILES) + 3 :]).lstrip("/")
    return text


def mapped_uris(uri: str, path_map: Sequence[tuple[str, str]]) -> list[str]:
    """Every location a task's image may be recorded at: as written, and through the map."""
    path = labelstudio_path(uri)
    out = [uri, path]
    for prefix, root in path_map:
        # The one-path form first, so /data/local-files/ maps the decoded ?d= path.
        form = next((f for f in (path, uri) if f.startswith(prefix)), None)
        if form is not None:
            out.append(root + form[len(prefix) :])
    return list(dict.fromkeys(out))
