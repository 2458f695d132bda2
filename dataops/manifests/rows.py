"""A manifest's rows in ``manifest_rows``: stored once per content hash, however many names.

PostgreSQL loads them with COPY over the session's own connection, on a thread, while the
caller writes the Parquet copy and the datasheet; SQLite inserts them in batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.database.dialect import advisory_xact_lock, insert, is_sqlite
from dataops.manifests import models
from dataops.manifests.datasheet import Frozen
from dataops.manifests.freeze import FETCH_CHUNK

COPY_COLUMNS = (
    "content_hash",
    "sha256",
    "image_id",
    "split",
    "label_version_id",
    "label",
    "dup_group_id",
)
_COPY_NULL = "\\N"
# Test hook (``dataops.jobs.runner.PAUSE_POINTS``): runs right before a creation stores its
# rows, after it has read the catalog and checked its name; race tests hold creations here.
ROWS_POINT = "manifest.store_rows"

# Awaits rows being stored; True when this creation stored them, False when they were there.
RowsStored = Callable[[], bool]


def lock_key(manifest_id: str) -> int:
    """The advisory lock key of a content hash: its first 64 bits, signed as PostgreSQL's."""
    return int.from_bytes(bytes.fromhex(manifest_id.removeprefix("sha256:")[:16]), signed=True)


def _rows_exist(session: Session, manifest_id: str) -> bool:
    return (
        session.scalar(
            select(models.ManifestRow.sha256)
            .where(models.ManifestRow.content_hash == manifest_id)
            .limit(1)
        )
        is not None
    )


def _copy_text(value: str) -> str:
    """A value in COPY's text format: backslash and the row and column separators escaped."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


def _copy_blocks(manifest_id: str, frozen: Frozen) -> Iterator[bytes]:
    """The rows in COPY text format, a block of lines at a time.

    One join per block instead of one ``write_row`` call per row: Python builds a million
    lines in a couple of seconds. In image order, the foreign-key checks read the images
    table sequentially instead of at random: about twice as fast at a million rows.
    """
    order = sorted(range(len(frozen.rows)), key=frozen.image_ids.__getitem__)
    for start in range(0, len(order), FETCH_CHUNK):
        lines = []
        for index in order[start : start + FETCH_CHUNK]:
            row = frozen.rows[index]
            label = frozen.label_texts[index]
            group = row["dup_group_id"]
            lines.append(
                f"{manifest_id}\t{row['sha256']}\t{frozen.image_ids[index]}\t{row['split']}\t"
                f"{row['label_version_id']}\t{_COPY_NULL if label is None else _copy_text(label)}\t"
                f"{_COPY_NULL if group is None else group}\n"
            )
        yield "".join(lines).encode()


def copy_rows_postgres(dbapi: Any, manifest_id: str, frozen: Frozen) -> None:
    """COPY the rows straight into ``manifest_rows`` over the session's own connection.

    The fast path for a million rows. The caller holds the content hash's advisory lock and
    has seen no rows for it, so nothing can conflict (see :func:`store_rows`).
    """
    columns = ", ".join(COPY_COLUMNS)
    with (
        dbapi.cursor() as cursor,
        cursor.copy(f"COPY manifest_rows ({columns}) FROM STDIN") as copy,
    ):
        for block in _copy_blocks(manifest_id, frozen):
            copy.write(block)


def _insert_rows_sqlite(session: Session, manifest_id: str, frozen: Frozen) -> None:
    stmt = insert(session, models.ManifestRow).on_conflict_do_nothing()
    batch: list[dict[str, Any]] = []
    for row, image_id in zip(frozen.rows, frozen.image_ids, strict=True):
        batch.append(
            {
                "content_hash": manifest_id,
                "sha256": row["sha256"],
                "image_id": image_id,
                "split": row["split"],
                "label_version_id": row["label_version_id"],
                "label": row["label"],
                "dup_group_id": row["dup_group_id"],
            }
        )
        if len(batch) == FETCH_CHUNK:
            session.execute(stmt, batch)
            batch = []
    if batch:
        session.execute(stmt, batch)


def store_rows(session: Session, manifest_id: str, frozen: Frozen, pool: Executor) -> RowsStored:
    """Start storing the rows of a content hash unless stored already.

    The result says, once awaited, whether this call stored them; until then the session
    must not be used. Two creations of the same content must store one copy. On PostgreSQL
    a transaction-scoped advisory lock on the content hash serialises them: the second waits
    until the first commits or rolls back, then sees its rows (or none) and acts on that; the
    COPY then runs on ``pool``, so the server loads the rows while this process writes the
    Parquet copy and the datasheet. SQLite has one writer at a time anyway, and job progress
    is written from another connection that would wait for this one's write lock, so the
    rows are inserted only when awaited, after the last progress report; INSERT ... ON
    CONFLICT DO NOTHING keeps a repeat harmless.
    """
    from dataops.jobs.runner import pause_point

    pause_point(ROWS_POINT)
    if is_sqlite(session):

        def insert_sqlite() -> bool:
            if _rows_exist(session, manifest_id):
                return False
            _insert_rows_sqlite(session, manifest_id, frozen)
            return True

        return insert_sqlite
    advisory_xact_lock(session, lock_key(manifest_id))
    if _rows_exist(session, manifest_id):
        return lambda: False
    dbapi = session.connection().connection.driver_connection
    copying = pool.submit(copy_rows_postgres, dbapi, manifest_id, frozen)

    def await_copy() -> bool:
        copying.result()
        return True

    return await_copy
