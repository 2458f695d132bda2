"""Canonical manifest bodies: the bytes whose sha256 is the manifest id.

The body is JSON Lines: one header line (format, version, seed, split spec, row count)
then one row per image, sorted by sha256. Every line is canonical JSON (sorted keys, no
whitespace, UTF-8, ``repr`` floats), so the same rows, seed and spec always give the same
bytes, whatever order the rows came in. A manifest's name, author and creation time live
in the database record, never in the body, so renaming or rebuilding later keeps the id.

A Parquet copy with the same rows (``label`` as canonical JSON text, the header in the
schema metadata) serves columnar readers; :func:`verify_parquet` proves it matches the id.

Label payloads are JSON objects: ``{"class": "helmet"}`` for image labels and
``{"boxes": [{"class": "person", "x": .1, "y": .2, "w": .3, "h": .4}]}`` for boxes, with
box coordinates relative to the image size (top-left corner, width, height in [0, 1]).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, TypedDict, cast

from dataops.errors import DataopsError
from dataops.manifests.errors import ManifestError
from dataops.manifests.files import atomic_write
from dataops.manifests.splits import SplitSpecError, format_split_spec, normalize_split_spec

FORMAT = "dataops.manifest"
FORMAT_VERSION = 1
PARQUET_METADATA_KEY = b"dataops.manifest"
FIELDS = frozenset(
    {
        "sha256",
        "blob_key",
        "uri",
        "split",
        "label_version_id",
        "label",
        "guideline_version",
        "dup_group_id",
        "width",
        "height",
    }
)
_TYPES: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("blob_key", str),
    ("uri", str),
    ("split", str),
    ("label", dict),
    ("guideline_version", (str, type(None))),
)
# Integer fields must be plain ints: a bool would pass isinstance but is written as true/false.
_INTS = ("label_version_id", "width", "height")
_HEADER_FIELDS = frozenset({"format", "version", "seed", "splits", "rows"})
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 20_000
_BLOCK = 1 << 24
_MAX_PROBLEMS = 20

_encode: Callable[[Any], str] = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode
# The string escaper that encoder uses (ensure_ascii=False): quotes and escapes one string.
_string: Callable[[str], str] = json.encoder.encode_basestring


class RowRecord(TypedDict):
    """One image of a manifest as its body holds it (the database copy is ``ManifestRow``)."""

    sha256: str
    blob_key: str
    uri: str
    split: str
    label_version_id: int
    label: dict[str, Any]
    guideline_version: str | None
    dup_group_id: int | None
    width: int
    height: int


class BodyFiles(NamedTuple):
    """Where :func:`write_body` put a body, and its id."""

    manifest_id: str
    jsonl_path: Path
    parquet_path: Path


def manifest_id(body: bytes) -> str:
    """Content address of a body: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ManifestError(f"seed must be an integer, got {seed!r}")


def _header(seed: int, ratios: Mapping[str, float], rows: int) -> dict[str, Any]:
    _check_seed(seed)
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "seed": seed,
        "splits": format_split_spec(ratios),
        "rows": rows,
    }


def _prepare(
    rows: Iterable[RowRecord], seed: int, spec: str | Mapping[str, float]
) -> tuple[dict[str, Any], list[RowRecord]]:
    """Header and rows in canonical order, refusing rows a manifest must not hold."""
    ratios = normalize_split_spec(spec)
    try:
        ordered = sorted(rows, key=itemgetter("sha256"))
    except (KeyError, TypeError):
        raise ManifestError("every row needs a sha256 string") from None
    previous = ""
    for row in ordered:
        sha = row["sha256"]
        if row.keys() != FIELDS:
            extra = sorted(row.keys() - FIELDS)
            missing = sorted(FIELDS - row.keys())
            raise ManifestError(f"row {sha}: missing fields {missing}, unknown fields {extra}")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise ManifestError(f"row sha256 {sha!r} is not 64 lowercase hex digits")
        if sha == previous:
            raise ManifestError(f"image {sha} appears twice")
        values = cast(Mapping[str, Any], row)
        for name, kind in _TYPES:
            if not isinstance(values[name], kind):
                raise ManifestError(f"row {sha}: {name} {values[name]!r} has the wrong type")
        for name in _INTS:
            if type(values[name]) is not int:
                raise ManifestError(f"row {sha}: {name} {values[name]!r} has the wrong type")
        if row["dup_group_id"] is not None and type(row["dup_group_id"]) is not int:
            raise ManifestError(
                f"row {sha}: dup_group_id {row['dup_group_id']!r} has the wrong type"
            )
        if row["split"] not in ratios:
            raise ManifestError(f"row {sha}: split {row['split']!r} is not in the spec")
        previous = sha
    return _header(seed, ratios, len(ordered)), ordered


def _label_texts(ordered: Sequence[RowRecord]) -> list[str]:
    """Canonical JSON of every label, encoded once for both the JSONL and the Parquet copy."""
    try:
        return [_encode(row["label"]) for row in ordered]
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"rows cannot be written as canonical JSON: {exc}") from exc


def _row_line(row: RowRecord, label: str) -> str:
    """``_encode(row)`` spelled out for a row :func:`_prepare` checked, with its label encoded.

    The fields are fixed and in sorted order, strings go through the JSON encoder's own
    string escaper and ints are plain ints, so the bytes are the same; this is about three
    times faster than encoding the whole row as a dict.
    """
    group, guideline = row["dup_group_id"], row["guideline_version"]
    return (
        f'{{"blob_key":{_string(row["blob_key"])},'
        f'"dup_group_id":{"null" if group is None else group},'
        f'"guideline_version":{"null" if guideline is None else _string(guideline)},'
        f'"height":{row["height"]},"label":{label},'
        f'"label_version_id":{row["label_version_id"]},"sha256":"{row["sha256"]}",'
        f'"split":{_string(row["split"])},"uri":{_string(row["uri"])},"width":{row["width"]}}}'
    )


def _chunks(
    header: Mapping[str, Any], ordered: Sequence[RowRecord], labels: Sequence[str]
) -> Iterator[bytes]:
    yield (_encode(header) + "\n").encode()
    for start in range(0, len(ordered), _CHUNK):
        lines = map(_row_line, ordered[start : start + _CHUNK], labels[start : start + _CHUNK])
        yield ("\n".join(lines) + "\n").encode()


def canonical_jsonl(rows: Iterable[RowRecord], seed: int, spec: str | Mapping[str, float]) -> bytes:
    """The canonical body of these rows; hash it with :func:`manifest_id`."""
    header, ordered = _prepare(rows, seed, spec)
    return b"".join(_chunks(header, ordered, _label_texts(ordered)))


def _parquet_table(ordered: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> Any:
    import pyarrow as pa

    text, integer = pa.string(), pa.int64()
    types = {
        "sha256": text,
        "blob_key": text,
        "uri": text,
        "split": text,
        "label_version_id": integer,
        "label": text,
        "guideline_version": text,
        "dup_group_id": integer,
        "width": integer,
        "height": integer,
    }
    names = [name for name in types if name != "label"]
    # One pass over the rows, whose fields sit together in memory, then transposed: several
    # times faster at a million rows than one pass per column.
    transposed = zip(*map(itemgetter(*names), ordered), strict=True)
    columns: dict[str, Sequence[Any]] = dict(zip(names, transposed, strict=True)) if ordered else {}
    columns["label"] = labels
    return pa.table({name: pa.array(columns.get(name, ()), kind) for name, kind in types.items()})


def write_body(
    directory: str | os.PathLike[str],
    rows: Iterable[RowRecord],
    seed: int,
    spec: str | Mapping[str, float],
    on_id: Callable[[str], object] | None = None,
) -> BodyFiles:
    """Write ``<hex>.jsonl`` and ``<hex>.parquet`` atomically; idempotent for the same body.

    The JSONL is streamed through the hash, so the body is never held in memory whole.
    ``on_id`` is called with the id as soon as it is known, before the Parquet copy is
    written, so a caller can start work that needs the id (storing rows) meanwhile.
    """
    import pyarrow.parquet as pq

    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    header, ordered = _prepare(rows, seed, spec)
    labels = _label_texts(ordered)
    hasher = hashlib.sha256()

    def write_jsonl(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            for chunk in _chunks(header, ordered, labels):
                hasher.update(chunk)
                handle.write(chunk)

    tmp_jsonl = atomic_write(target, ".jsonl", write_jsonl)
    hex_digest = hasher.hexdigest()
    ident = "sha256:" + hex_digest
    try:
        if on_id is not None:
            on_id(ident)
        table = _parquet_table(ordered, labels).replace_schema_metadata(
            {PARQUET_METADATA_KEY: _encode({**header, "id": ident}).encode()}
        )
        tmp_parquet = atomic_write(
            target, ".parquet", lambda tmp: pq.write_table(table, tmp, compression="zstd")
        )
    except BaseException:
        tmp_jsonl.unlink(missing_ok=True)
        raise
    files = BodyFiles(ident, target / f"{hex_digest}.jsonl", target / f"{hex_digest}.parquet")
    os.replace(tmp_parquet, files.parquet_path)
    os.replace(tmp_jsonl, files.jsonl_path)
    return files


def _parse_lines(lines: Sequence[bytes]) -> list[Any]:
    """Parse many lines in one call (several times faster than one call per line).

    When that fails, or two broken lines happen to join into one valid value, parse line by
    line so each bad line becomes its ``ValueError`` in place.
    """
    try:
        parsed = json.loads(b"[" + b",".join(lines) + b"]")
        if isinstance(parsed, list) and len(parsed) == len(lines):
            return parsed
    except ValueError:
        pass
    result: list[Any] = []
    for line in lines:
        try:
            result.append(json.loads(line))
        except ValueError as exc:
            result.append(exc)
    return result


def _parse_header(line: bytes) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except ValueError as exc:
        raise ManifestError(f"header line is not JSON: {exc}") from None
    if not isinstance(header, dict) or header.keys() != _HEADER_FIELDS:
        raise ManifestError(f"header must have exactly the fields {sorted(_HEADER_FIELDS)}")
    if header["format"] != FORMAT or header["version"] != FORMAT_VERSION:
        raise ManifestError(
            f"unsupported body format {header['format']!r} version {header['version']!r}"
        )
    try:
        normalize_split_spec(header["splits"])
        _check_seed(header["seed"])
    except (SplitSpecError, ManifestError, TypeError, AttributeError) as exc:
        raise ManifestError(f"bad header: {exc}") from None
    return header


def read_body(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[RowRecord]]:
    """Header and rows of a JSONL body (no hash check: use :func:`verify_body` for that)."""
    with open(path, "rb") as handle:
        header = _parse_header(handle.readline())
        lines = handle.read().splitlines()
    rows: list[RowRecord] = []
    for start in range(0, len(lines), _CHUNK):
        for offset, row in enumerate(_parse_lines(lines[start : start + _CHUNK])):
            if not isinstance(row, dict):
                raise ManifestError(f"{path}: line {start + offset + 2} is not a JSON object")
            rows.append(cast(RowRecord, row))
    return header, rows


def _open_parquet(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    meta = (parquet.schema_arrow.metadata or {}).get(PARQUET_METADATA_KEY)
    if meta is None:
        raise ManifestError(f"{path}: no {PARQUET_METADATA_KEY.decode()} metadata")
    return parquet, json.loads(meta)


def _parquet_batches(parquet: Any) -> Iterator[list[RowRecord]]:
    for batch in parquet.iter_batches(batch_size=_CHUNK):
        rows = batch.to_pylist()
        for row in rows:
            row["label"] = json.loads(row["label"])
        yield rows


def read_parquet_body(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Any], list[RowRecord]]:
    """Header and rows of a Parquet body, with ``label`` decoded back to an object."""
    parquet, header = _open_parquet(path)
    rows: list[RowRecord] = []
    for batch in _parquet_batches(parquet):
        rows.extend(batch)
    return header, rows


class _Problems:
    """Collects problems, keeping the report short on a badly damaged body."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.dropped = 0

    def add(self, message: str) -> None:
        if len(self.items) < _MAX_PROBLEMS:
            self.items.append(message)
        else:
            self.dropped += 1

    def result(self) -> list[str]:
        if self.dropped:
            return [*self.items, f"... and {self.dropped} more problems"]
        return self.items


def _check_rows(
    batch: Sequence[bytes],
    first_line: int,
    previous: str,
    splits: Mapping[str, float] | None,
    problems: _Problems,
) -> str:
    """Check one batch of row lines; returns the last sha256 seen for the order check."""
    for offset, row in enumerate(_parse_lines(batch)):
        line_no = first_line + offset
        if isinstance(row, ValueError):
            problems.add(f"line {line_no}: not JSON ({row})")
            continue
        if not isinstance(row, dict) or row.keys() != FIELDS:
            problems.add(f"line {line_no}: fields differ from the manifest row fields")
            continue
        sha = row["sha256"]
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            problems.add(f"line {line_no}: sha256 {sha!r} is not 64 lowercase hex digits")
            continue
        if sha <= previous:
            problems.add(f"line {line_no}: {sha} is out of order or repeated")
        if splits is not None and row["split"] not in splits:
            problems.add(f"line {line_no}: split {row['split']!r} is not in the header spec")
        previous = sha
    return previous


def _check_structure(
    path: str | os.PathLike[str], splits: Mapping[str, float] | None, problems: _Problems
) -> None:
    """Parse every row line, streaming, to say which lines are wrong and how."""
    with open(path, "rb") as handle:
        handle.readline()
        count, previous, batch = 0, "", []
        for line in handle:
            batch.append(line)
            if len(batch) == _CHUNK:
                previous = _check_rows(batch, count + 2, previous, splits, problems)
                count += len(batch)
                batch = []
        if batch:
            _check_rows(batch, count + 2, previous, splits, problems)


def verify_body(path: str | os.PathLike[str], expected_id: str, deep: bool = False) -> list[str]:
    """Problems with a JSONL body; empty when it hashes to ``expected_id`` and is well formed.

    The hash proves the bytes are exactly the ones :func:`write_body` produced, and it
    validated every row, so an intact body needs only the hash, the header and the row
    count. Each row is parsed and checked when the hash differs (to say what changed) or
    when ``deep`` is set (for a body from another writer). Streams the file in blocks, so
    memory stays flat for large manifests.
    """
    hasher = hashlib.sha256()
    problems = _Problems()
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, after streaming
    except OSError as exc:
        return [f"cannot read {path}: {exc.strerror or exc}"]
    with handle:
        first = handle.readline()
        hasher.update(first)
        newlines, last, after_header = 0, first[-1:], 0
        while block := handle.read(_BLOCK):
            hasher.update(block)
            newlines += block.count(b"\n")
            after_header += len(block)
            last = block[-1:]
    actual = "sha256:" + hasher.hexdigest()
    if actual != expected_id:
        problems.add(f"content hash {actual} does not match {expected_id}")
    header: dict[str, Any] | None = None
    splits: Mapping[str, float] | None = None
    try:
        header = _parse_header(first)
        splits = normalize_split_spec(header["splits"])
    except ManifestError as exc:
        problems.add(str(exc))
    rows = newlines
    if last != b"\n":
        problems.add("body does not end with a newline (truncated?)")
        rows += after_header > 0
    if header is not None and header["rows"] != rows:
        problems.add(f"header says {header['rows']} rows, body has {rows}")
    if deep or actual != expected_id:
        _check_structure(path, splits, problems)
    return problems.result()


def verify_parquet(path: str | os.PathLike[str], expected_id: str) -> list[str]:
    """Problems with a Parquet body; empty when its rows and header rebuild ``expected_id``.

    Re-encodes the rows batch by batch in file order, so memory stays flat; rows that are
    reordered, added, dropped or changed all change the rebuilt hash.
    """
    try:
        parquet, meta = _open_parquet(path)
    except (OSError, ValueError, DataopsError) as exc:
        return [f"cannot read {path}: {exc}"]
    problems = []
    if meta.get("id") != expected_id:
        problems.append(f"metadata id {meta.get('id')!r} does not match {expected_id}")
    try:
        ratios = normalize_split_spec(meta["splits"])
        header = _header(meta["seed"], ratios, parquet.metadata.num_rows)
        hasher = hashlib.sha256()
        for chunk in _chunks(header, [], []):
            hasher.update(chunk)
        for rows in _parquet_batches(parquet):
            hasher.update(("\n".join(map(_encode, rows)) + "\n").encode())
    except (DataopsError, KeyError, TypeError, ValueError, OSError) as exc:
        return [*problems, f"rows cannot be rebuilt into a body: {exc}"]
    actual = "sha256:" + hasher.hexdigest()
    if actual != expected_id:
        problems.append(f"rows and header hash to {actual}, not {expected_id}")
    return problems
