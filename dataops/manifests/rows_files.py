"""Rows-only data files for table readers: ``rows.jsonl`` and ``rows.parquet``.

The canonical body starts with a header line, which pandas, polars, duckdb and Hugging Face
``datasets`` read as an extra row, and its Parquet copy keeps ``label`` as JSON text. These
files hold only the rows, with ``label`` as an object (JSON) or a typed struct (Parquet),
so every reader gets the rows without a workaround. They are written next to a copy of the
canonical body (``manifest.jsonl``), whose bytes, and hence the manifest id, are untouched.

``manifest create`` stores both files beside the body, under keys named by their own sha256
(so a second name for the same content never overwrites them), and records key and sha256 in
the manifest record (``selection["rows_files"]``), where ``manifest verify`` checks them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from dataops.manifests.body import RowRecord

ROWS_JSONL = "rows.jsonl"
ROWS_PARQUET = "rows.parquet"
_COORDS = ("x", "y", "w", "h")
RECORD_KEY = "rows_files"
_BLOCK = 1 << 20


def _box_type(boxes: list[dict[str, Any]]) -> Any:
    import pyarrow as pa

    keys = sorted({"class", *_COORDS} | {key for box in boxes for key in box})
    fields = []
    for key in keys:
        if key in _COORDS:
            kind = pa.float64()
        elif key == "class":
            kind = pa.string()
        else:
            kind = pa.array([box.get(key) for box in boxes]).type
        fields.append(pa.field(key, kind))
    return pa.struct(fields)


def label_type(labels: Sequence[dict[str, Any]]) -> Any:
    """A struct type for the labels: ``class`` a string, ``boxes`` a list of typed boxes."""
    import pyarrow as pa

    keys = sorted({key for label in labels for key in label})
    fields = []
    for key in keys:
        if key == "class":
            kind = pa.string()
        elif key == "boxes":
            lists = (label.get(key) for label in labels)
            boxes = [box for value in lists if isinstance(value, list) for box in value]
            kind = pa.list_(_box_type(boxes))
        else:
            kind = pa.array([label.get(key) for label in labels]).type
        fields.append(pa.field(key, kind))
    return pa.struct(fields)


_COLUMNS = (
    ("sha256", "text"),
    ("blob_key", "text"),
    ("uri", "text"),
    ("split", "text"),
    ("label_version_id", "int"),
    ("guideline_version", "text"),
    ("dup_group_id", "int"),
    ("width", "int"),
    ("height", "int"),
)


def _schema(rows: Sequence[RowRecord]) -> Any:
    import pyarrow as pa

    kinds = {"text": pa.string(), "int": pa.int64()}
    fields = [pa.field(name, kinds[kind]) for name, kind in _COLUMNS]
    fields.append(pa.field("label", label_type([row["label"] for row in rows])))
    return pa.schema(fields)


def _parquet_from_jsonl(jsonl: Path, schema: Any, parquet: Path) -> None:
    """Parse the row lines with Arrow's JSON reader into the typed schema (C++, several
    times faster than building the columns from Python dicts) and write them as Parquet."""
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    table = pj.read_json(
        jsonl, read_options=pj.ReadOptions(block_size=1 << 24), parse_options=options
    )
    pq.write_table(table.select(schema.names), parquet, compression="zstd")


def write_rows_files(folder: Path, rows: Sequence[RowRecord], body: Path | None = None) -> None:
    """``rows.jsonl`` (one object per row) and ``rows.parquet`` (typed label struct).

    Given the canonical ``body`` of these rows, ``rows.jsonl`` is its row lines (canonical
    JSON objects, already in body order) copied after the header: the same bytes whoever
    writes them, and many times faster than encoding every row again.
    """
    if body is not None:
        with open(body, "rb") as source, open(folder / ROWS_JSONL, "wb") as handle:
            source.readline()
            shutil.copyfileobj(source, handle, _BLOCK)
    else:
        with open(folder / ROWS_JSONL, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
    _parquet_from_jsonl(folder / ROWS_JSONL, _schema(rows), folder / ROWS_PARQUET)


def write_hashed(
    folder: Path, rows: Sequence[RowRecord], body: Path
) -> dict[str, tuple[Path, str]]:
    """Both files for rows in body order (by sha256): ``{file name: (path, sha256 hex)}``."""
    write_rows_files(folder, sorted(rows, key=itemgetter("sha256")), body)
    written = {}
    for name in (ROWS_JSONL, ROWS_PARQUET):
        with open(folder / name, "rb") as handle:
            written[name] = (folder / name, hashlib.file_digest(handle, "sha256").hexdigest())
    return written


def file_problem(name: str, path: Path, expected: str) -> str | None:
    """Why a stored rows file does not match the sha256 its manifest recorded, if it does not."""
    try:
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        return f"{name}: missing"
    if digest != expected:
        return f"{name}: sha256 {digest} differs from the recorded {expected}"
    return None
