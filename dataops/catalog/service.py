from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from dataops.catalog.errors import ImageNotFound
from dataops.catalog.models import OK, QUARANTINED, Image, ImageLocation, Source, StaleLocation
from dataops.catalog.schemas import ImageDetail, IngestResult
from dataops.catalog.validate import Inspection
from dataops.database.dialect import insert
from dataops.db import utcnow
from dataops.events import service as events

_CHUNK = 500


def get_or_create_source(session: Session, name: str, *, actor: str | None = None) -> int:
    stmt = insert(session, Source).values(name=name).on_conflict_do_nothing()
    if session.execute(stmt).rowcount:  # type: ignore[attr-defined]
        events.record(session, "source.created", "source", name, actor=actor)
    return int(session.scalar(select(Source.id).where(Source.name == name)) or 0)


def known_locations(session: Session, uris: Sequence[str]) -> dict[str, str]:
    """The sha256 recorded at each known location; ingest re-hashes them, since a file's size
    and time stamps can stay the same while its bytes change."""
    known: dict[str, str] = {}
    for start in range(0, len(uris), _CHUNK):
        part = uris[start : start + _CHUNK]
        rows = session.execute(
            select(ImageLocation.uri, Image.sha256)
            .join(Image, Image.id == ImageLocation.image_id)
            .where(ImageLocation.uri.in_(part))
        )
        known.update((uri, sha) for uri, sha in rows)
    return known


@dataclass
class RecordCounts:
    new: int = 0
    existing: int = 0
    quarantined: int = 0
    locations_added: int = 0


def record_inspections(
    session: Session,
    inspections: Sequence[Inspection],
    *,
    source_id: int | None,
    attributes: dict[str, dict[str, str]],
) -> RecordCounts:
    """Insert new images and every new location; concurrent ingests of the same bytes are safe."""
    counts = RecordCounts()
    if not inspections:
        return counts
    rows: dict[str, dict[str, Any]] = {}
    for item in inspections:
        assert item.sha256 is not None
        if item.sha256 in rows:
            continue
        rows[item.sha256] = {
            "sha256": item.sha256,
            "uri": item.uri,
            "blob_key": item.blob_key,
            "width": item.width,
            "height": item.height,
            "format": item.format,
            "mode": item.mode,
            "bytes": item.bytes,
            "captured_at": item.captured_at,
            "camera": item.camera,
            "source_id": source_id,
            "attributes": attributes.get(item.uri, {}),
            "status": OK if item.status == "ok" else QUARANTINED,
            "quarantine_reason": item.reason,
            "phash": item.phash,
            "dhash": item.dhash,
            "phash_flip": item.phash_flip,
        }
    # Core executemany on the tables (one cached statement, batched by insertmanyvalues):
    # the ORM bulk path would build a state object per row first.
    images = Image.__table__
    stmt = insert(session, images).on_conflict_do_nothing(index_elements=["sha256"])
    inserted = set(session.scalars(stmt.returning(images.c.sha256), list(rows.values())))
    counts.new = len(inserted)
    counts.existing = len(inspections) - counts.new
    counts.quarantined = sum(1 for sha in inserted if rows[sha]["status"] == QUARANTINED)
    ids = {
        sha: image_id
        for sha, image_id in session.execute(
            select(Image.sha256, Image.id).where(Image.sha256.in_(list(rows)))
        )
    }
    locations = [
        {"image_id": ids[i.sha256], "uri": i.uri, "source_id": source_id}
        for i in inspections
        if i.sha256 in ids
    ]
    _note_moves(session, {i.uri: ids[i.sha256] for i in inspections if i.sha256 in ids}, ids)
    # A location whose bytes changed moves to the new image; the old image keeps its history.
    location_table = ImageLocation.__table__
    loc_stmt = insert(session, location_table)
    loc_stmt = loc_stmt.on_conflict_do_update(
        index_elements=["uri"],
        set_={"image_id": loc_stmt.excluded.image_id, "seen_at": utcnow()},
        where=location_table.c.image_id != loc_stmt.excluded.image_id,
    ).returning(location_table.c.id)
    counts.locations_added = len(list(session.scalars(loc_stmt, locations)))
    session.flush()
    return counts


def _note_moves(session: Session, found: dict[str, int], ids: dict[str, int]) -> None:
    """Locations that now hold other bytes are stale for the image they held."""
    sha_of = {image_id: sha for sha, image_id in ids.items()}
    moved = []
    uris = list(found)
    for start in range(0, len(uris), _CHUNK):
        part = uris[start : start + _CHUNK]
        for uri, image_id in session.execute(
            select(ImageLocation.uri, ImageLocation.image_id).where(ImageLocation.uri.in_(part))
        ):
            if image_id != found[uri]:
                moved.append((image_id, uri, sha_of[found[uri]]))
    clear_stale(session, {uri: sha_of[image_id] for uri, image_id in found.items()})
    for image_id, uri, found_sha in moved:
        mark_stale(session, image_id, uri, found_sha)


def clear_stale(session: Session, found: dict[str, str]) -> None:
    """An image found at a location again (``found``: location → sha256 of its bytes now) is
    no longer stale there."""
    uris = list(found)
    for start in range(0, len(uris), _CHUNK):
        part = uris[start : start + _CHUNK]
        rows = session.execute(
            select(StaleLocation.id, StaleLocation.uri, Image.sha256)
            .join(Image, Image.id == StaleLocation.image_id)
            .where(StaleLocation.uri.in_(part))
        )
        done = [row_id for row_id, uri, sha in rows if found[uri] == sha]
        if done:
            session.execute(delete(StaleLocation).where(StaleLocation.id.in_(done)))


def mark_stale(session: Session, image_id: int, uri: str, found_sha256: str | None) -> None:
    """Record that ``uri`` no longer holds the bytes of image ``image_id``."""
    stmt = insert(session, StaleLocation).values(
        image_id=image_id, uri=uri, found_sha256=found_sha256, detected_at=utcnow()
    )
    changed = session.execute(
        stmt.on_conflict_do_update(
            index_elements=["image_id", "uri"],
            set_={"found_sha256": stmt.excluded.found_sha256, "detected_at": utcnow()},
            where=StaleLocation.found_sha256.is_distinct_from(stmt.excluded.found_sha256),
        )
    ).rowcount  # type: ignore[attr-defined]
    if not changed:
        return  # already recorded with these bytes: one event per change, not per request
    events.record(
        session,
        "image.location_stale",
        "image",
        str(image_id),
        details={"uri": uri, "found_sha256": found_sha256},
    )


def stale_locations(session: Session, image_id: int) -> list[str]:
    return list(
        session.scalars(
            select(StaleLocation.uri)
            .where(StaleLocation.image_id == image_id)
            .order_by(StaleLocation.id)
        )
    )


def record_ingest_event(
    session: Session, result: IngestResult, *, actor: str | None, job_id: str
) -> None:
    events.record(
        session,
        "catalog.ingested",
        "job",
        job_id,
        actor=actor,
        details=result.model_dump(
            include={"files", "new", "skipped", "quarantined", "unreadable", "refused"}
        ),
    )


def image_query(
    *,
    status: str | None = None,
    source: str | None = None,
    attribute: dict[str, str] | None = None,
) -> Select[Image]:
    stmt = select(Image).order_by(Image.id)
    if status:
        stmt = stmt.where(Image.status == status)
    if source:
        stmt = stmt.join(Source, Source.id == Image.source_id).where(Source.name == source)
    for key, value in (attribute or {}).items():
        stmt = stmt.where(Image.attributes[key].as_string() == value)
    return stmt


def list_images(
    session: Session,
    *,
    status: str | None = None,
    source: str | None = None,
    attribute: dict[str, str] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Image]:
    stmt = image_query(status=status, source=source, attribute=attribute).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def get_image(session: Session, ref: str | int) -> Image:
    """By id, full sha256, or a unique sha256 prefix of at least 8 characters."""
    text = str(ref)
    image: Image | None
    if text.isdigit() and len(text) < 20:
        image = session.get(Image, int(text))
    elif len(text) == 64:
        image = session.scalar(select(Image).where(Image.sha256 == text.lower()))
    elif len(text) >= 8:
        matches = list(
            session.scalars(select(Image).where(Image.sha256.startswith(text.lower())).limit(2))
        )
        image = matches[0] if len(matches) == 1 else None
    else:
        image = None
    if image is None:
        raise ImageNotFound(
            f"no image {text!r} (use an id, a sha256 or a unique prefix of 8+ characters)"
        )
    return image


def image_locations(session: Session, image_id: int) -> list[str]:
    return list(
        session.scalars(
            select(ImageLocation.uri)
            .where(ImageLocation.image_id == image_id)
            .order_by(ImageLocation.id)
        )
    )


def source_name(session: Session, source_id: int | None) -> str | None:
    return (
        None
        if source_id is None
        else session.scalar(select(Source.name).where(Source.id == source_id))
    )


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Image.status, func.count()).group_by(Image.status)).tuples()
    return {status: int(n) for status, n in rows}


def quarantine_reasons(session: Session) -> list[tuple[str, str]]:
    rows = session.execute(
        select(Image.uri, Image.quarantine_reason)
        .where(Image.status == QUARANTINED)
        .order_by(Image.id)
    ).tuples()
    return [(uri, reason or "") for uri, reason in rows]


def image_detail(session: Session, image: Image) -> ImageDetail:
    from dataops.catalog.hashing import from_signed64

    data = {c.key: getattr(image, c.key) for c in Image.__table__.columns}
    for key in ("phash", "dhash"):
        value = data.pop(key)
        data[key] = None if value is None else f"{from_signed64(value):016x}"
    data.pop("phash_flip", None)
    data["source"] = source_name(session, image.source_id)
    data["locations"] = image_locations(session, image.id)
    data["stale_locations"] = stale_locations(session, image.id)
    return ImageDetail.model_validate(data)


def known_image_sha(session: Session, uri: str) -> str:
    """The sha256 of the image recorded at a location."""
    sha = session.scalar(
        select(Image.sha256)
        .join(ImageLocation, ImageLocation.image_id == Image.id)
        .where(ImageLocation.uri == uri)
    )
    if sha is None:
        raise ImageNotFound(f"no image recorded at {uri}")
    return sha
