"""Vendors, guidelines, queues, annotators and append-only label versions.

Every function takes the caller's Session, flushes and never commits, and records an
Event for each change.

Label versions are append-only. An edit is a new row whose ``supersedes_id`` points at the
previous version of the same annotator for the same image, task and batch; the newest row of
that chain is the live one. ``source_key`` (source + source id + the source's updated_at) makes
every write idempotent: pulling or importing the same annotation twice stores it once.

Queues and isolation: Label Studio OSS has no per-project permissions; every user of an
instance can open every project on it. A vendor that must not see other vendors' work gets
its own Label Studio instance, configured as a named connection
(``DATAOPS_LABELSTUDIO_CONNECTIONS__<NAME>__URL`` / ``__TOKEN``), and its queues use it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dataops.audits import policy as relabel_policy
from dataops.catalog.errors import ImageNotFound
from dataops.catalog.models import QUARANTINED, Image, ImageLocation
from dataops.errors import Conflict, DataopsError, NotFound
from dataops.events import service as events
from dataops.labeling import guidelines as guideline_files
from dataops.labeling import importers
from dataops.labeling.errors import (
    AnnotatorConflict,
    AnnotatorNotFound,
    GuidelineError,
    GuidelineNotFound,
    InvalidLabel,
    LabelNotFound,
    QueueNotFound,
    QueuePinned,
    QueueSettingsError,
    VendorNotFound,
)
from dataops.labeling.models import (
    ACCEPTED,
    ADJUDICATED,
    DELETED,
    REJECTED,
    RELEASED,
    SUBMITTED,
    Annotator,
    Guideline,
    LabelVersion,
    Queue,
    Vendor,
)
from dataops.labeling.schemas import (
    AnnotatorOut,
    GuidelineDetail,
    GuidelineOut,
    ImportReport,
    LabelVersionOut,
    QueueOut,
    RowError,
    VendorOut,
    normalise_payload,
)
from dataops.names import refuse_look_alike
from dataops.selection.models import Batch

DEFAULT_CONNECTION = "default"
SOURCE_LABELSTUDIO = "labelstudio"
SOURCE_CSV = "csv"
MAPPED_BY = ("ls_user_id", "import", "manual")
LABEL_STATUSES = (SUBMITTED, ACCEPTED, REJECTED, ADJUDICATED)
AUDIT_STATUSES = (ACCEPTED, REJECTED, ADJUDICATED, RELEASED)
MAX_GOLD = 0.5
MAX_DUE_DAYS = 365.0
_NAME = re.compile(r"^\w[\w .@+-]{0,127}$")
_SOURCE = re.compile(r"^[a-z][a-z0-9_.-]{0,31}$")
_DUE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([hdw]?)\s*$", re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_ID = re.compile(r"[0-9]{1,9}")
_CHUNK = 500


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


@overload
def _aware(value: datetime) -> datetime: ...
@overload
def _aware(value: datetime | None) -> datetime | None: ...
def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without a zone; every stored one is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _check_entity_name(name: str, what: str) -> str:
    clean = name.strip()
    if not _NAME.match(clean) or clean.isdigit():
        raise DataopsError(
            f"{what} name {name!r} must start with a letter or digit, use letters, digits, "
            "spaces, '.', '_', '-', '@' or '+', be at most 128 characters and not be only digits"
        )
    return clean


# --- connections -------------------------------------------------------------------------


def check_connection(name: str) -> str:
    """A queue's Label Studio instance: ``default`` or a name configured in settings."""
    from dataops.config import get_settings

    named = get_settings().labelstudio_connections
    if name == DEFAULT_CONNECTION or name in named:
        return name
    # Names set through environment variables arrive lower-cased.
    folded = [key for key in named if key.casefold() == name.casefold()]
    if len(folded) == 1:
        return folded[0]
    known = ", ".join([DEFAULT_CONNECTION, *sorted(named)])
    raise QueueSettingsError(
        f"unknown Label Studio connection {name!r}; use one of: {known}. 'default' is "
        "DATAOPS_LABELSTUDIO_URL/TOKEN; add a named instance with "
        f"DATAOPS_LABELSTUDIO_CONNECTIONS__{name.upper()}__URL and __TOKEN"
    )


# --- vendors ------------------------------------------------------------------------------


def create_vendor(session: Session, name: str, *, actor: str | None = None) -> tuple[Vendor, bool]:
    """Idempotent: an existing vendor of that name is returned with ``created=False``."""
    clean = _check_entity_name(name, "vendor")
    refuse_look_alike(session, Vendor.name, clean, "vendor")
    stmt = _insert(session, Vendor).values(name=clean).on_conflict_do_nothing()
    new_id = session.scalar(stmt.returning(Vendor.id))
    vendor = session.scalar(select(Vendor).where(Vendor.name == clean))
    assert vendor is not None
    if new_id is not None:
        events.record(session, "vendor.created", "vendor", vendor.id, actor=actor)
    return vendor, new_id is not None


def _by_id_or_name(session: Session, model: Any, ref: str | int) -> tuple[Any, str]:
    """A row by its numeric id or its unique name, and the reference as the user typed it.

    Names are never only digits, so a longer run of digits (or non-ASCII digits) matches no row
    instead of overflowing the id column.
    """
    text = str(ref).strip()
    if _ID.fullmatch(text):
        return session.get(model, int(text)), text
    return session.scalar(select(model).where(model.name == text)), text


def get_vendor(session: Session, ref: str | int) -> Vendor:
    vendor, text = _by_id_or_name(session, Vendor, ref)
    if vendor is None:
        raise VendorNotFound(f"no vendor {text!r}; create it with `dataops vendors create NAME`")
    return vendor


def vendor_out(vendor: Vendor) -> VendorOut:
    return VendorOut(id=vendor.id, name=vendor.name, created_at=vendor.created_at)


def list_vendors(session: Session) -> list[VendorOut]:
    queues = {
        vendor_id: int(n)
        for vendor_id, n in session.execute(
            select(Queue.vendor_id, func.count()).group_by(Queue.vendor_id)
        )
    }
    annotators = {
        vendor_id: int(n)
        for vendor_id, n in session.execute(
            select(Annotator.vendor_id, func.count()).group_by(Annotator.vendor_id)
        )
    }
    return [
        VendorOut(
            id=v.id,
            name=v.name,
            queues=queues.get(v.id, 0),
            annotators=annotators.get(v.id, 0),
            created_at=v.created_at,
        )
        for v in session.scalars(select(Vendor).order_by(Vendor.name))
    ]


# --- guidelines ---------------------------------------------------------------------------


def guideline_ref(guideline: Guideline) -> str:
    return f"{guideline.name}:{guideline.version}"


def guideline_out(guideline: Guideline) -> GuidelineOut:
    return GuidelineOut(
        id=guideline.id,
        name=guideline.name,
        version=guideline.version,
        ref=guideline_ref(guideline),
        sha256=guideline.sha256,
        kind=guideline.kind,
        classes=list(guideline.classes),
        created_by=guideline.created_by,
        created_at=guideline.created_at,
    )


def guideline_detail(guideline: Guideline) -> GuidelineDetail:
    return GuidelineDetail(
        **guideline_out(guideline).model_dump(),
        body=guideline.body,
        label_config=guideline.label_config,
    )


def publish_guideline(
    session: Session, path: Path, *, actor: str | None = None
) -> tuple[Guideline, bool]:
    """Register a guideline file; its version id is the sha256 of its bytes.

    The same bytes return the version already registered; changed bytes become the next
    version number of that name. Published versions are never edited.
    """
    parsed, data = guideline_files.read_guideline(path)
    return _publish(session, parsed, data, actor=actor)


def publish_guideline_text(
    session: Session, text: str, *, name: str | None = None, actor: str | None = None
) -> tuple[Guideline, bool]:
    """Register a guideline sent as text; the same text as a UTF-8 file gets the same version.

    ``name``, when given, must be the name in the front matter (a guard against publishing one
    guideline's text under another's name).
    """
    parsed = guideline_files.parse_guideline(text)
    if name is not None and parsed.name != name:
        raise GuidelineError(f"the front matter names the guideline {parsed.name!r}, not {name!r}")
    return _publish(session, parsed, text.encode(), actor=actor)


def _publish(
    session: Session, parsed: guideline_files.ParsedGuideline, data: bytes, *, actor: str | None
) -> tuple[Guideline, bool]:
    sha = hashlib.sha256(data).hexdigest()
    existing = session.scalar(select(Guideline).where(Guideline.sha256 == sha))
    if existing is not None:
        return existing, False
    refuse_look_alike(session, Guideline.name, parsed.name, "guideline")
    config = guideline_files.label_config_for(parsed)
    latest = session.scalar(
        select(func.max(Guideline.version)).where(Guideline.name == parsed.name)
    )
    stmt = (
        _insert(session, Guideline)
        .values(
            name=parsed.name,
            version=(latest or 0) + 1,
            sha256=sha,
            kind=parsed.kind,
            classes=parsed.classes,
            body=parsed.text,
            label_config=config,
            created_by=actor,
        )
        .on_conflict_do_nothing()
    )
    new_id = session.scalar(stmt.returning(Guideline.id))
    if new_id is None:
        raced = session.scalar(select(Guideline).where(Guideline.sha256 == sha))
        if raced is not None:
            return raced, False
        raise Conflict(
            f"another version of {parsed.name!r} was published at the same moment; publish again"
        )
    guideline = session.get(Guideline, new_id)
    assert guideline is not None
    events.record(
        session,
        "guideline.published",
        "guideline",
        guideline.id,
        actor=actor,
        details={"name": guideline.name, "version": guideline.version, "sha256": sha},
    )
    return guideline, True


def get_guideline(session: Session, ref: str) -> Guideline:
    """``NAME`` (newest version), ``NAME:N`` / ``NAME:vN``, or a sha256 (8+ character prefix)."""
    text = ref.strip()
    name, _, version = text.partition(":")
    stmt = select(Guideline).where(Guideline.name == name)
    if version:
        number = version.lower().removeprefix("v")
        if not number.isdigit():
            raise GuidelineNotFound(f"guideline version in {text!r} must be a number (NAME:2)")
        stmt = stmt.where(Guideline.version == int(number))
    guideline = session.scalar(stmt.order_by(Guideline.version.desc()).limit(1))
    if guideline is None and not version and len(text) >= 8 and re.fullmatch(r"[0-9a-f]+", text):
        matches = list(
            session.scalars(select(Guideline).where(Guideline.sha256.startswith(text)).limit(2))
        )
        guideline = matches[0] if len(matches) == 1 else None
    if guideline is None:
        raise GuidelineNotFound(
            f"no guideline {text!r}; publish it with `dataops guidelines publish "
            "guidelines/<name>/v<N>.md` or see `dataops guidelines list`"
        )
    return guideline


def list_guidelines(session: Session, name: str | None = None) -> list[Guideline]:
    stmt = select(Guideline).order_by(Guideline.name, Guideline.version)
    if name:
        stmt = stmt.where(Guideline.name == name)
    return list(session.scalars(stmt))


# --- queues -------------------------------------------------------------------------------


def parse_due(text: str) -> float:
    """``3d``, ``12h``, ``2w`` or a plain number of days → days."""
    match = _DUE.match(text)
    if not match:
        raise QueueSettingsError(f"--due {text!r}: give a duration like 3d, 12h or 2w")
    amount = float(match.group(1))
    unit = match.group(2).lower() or "d"
    days = amount * {"h": 1 / 24, "d": 1.0, "w": 7.0}[unit]
    if not 0 < days <= MAX_DUE_DAYS:
        raise QueueSettingsError(f"--due {text!r} must be more than 0 and at most 365 days")
    return days


def _check_fraction(value: float, option: str, maximum: float) -> float:
    if not 0.0 <= value <= maximum:
        percent = " (a fraction: 0.2 means 20 %)" if value > 1 else ""
        raise QueueSettingsError(
            f"{option} must be between 0 and {maximum:g}{percent}, got {value:g}"
        )
    return float(value)


def create_queue(
    session: Session,
    name: str,
    *,
    vendor: str | int,
    guideline: str,
    overlap: float = 0.0,
    gold: float = 0.0,
    due_days: float | None = None,
    connection: str = DEFAULT_CONNECTION,
    on_reject: str = relabel_policy.DEFAULT_ON_REJECT,
    relabel_answers: int = relabel_policy.DEFAULT_RELABEL_ANSWERS,
    relabel_agree: int = relabel_policy.DEFAULT_RELABEL_AGREE,
    relabel_rounds: int = relabel_policy.DEFAULT_RELABEL_ROUNDS,
    actor: str | None = None,
) -> tuple[Queue, bool]:
    """Create a vendor queue pinned to one guideline version and one Label Studio connection.

    ``overlap`` is the share of items labeled by more than one annotator (agreement), ``gold``
    the share of honeypot items with a known answer. Re-running with the same settings returns
    the existing queue. A queue is never re-pointed to another guideline version: labels made
    under different versions are not comparable, so a new version means a new queue (and a new
    Label Studio project). Label Studio OSS has no per-project permissions, so a vendor that must
    not see other vendors' work needs its own instance: pass that instance's named connection.
    ``on_reject`` and the ``relabel_*`` settings are the audit policy of the queue's batches
    (``dataops.audits.policy``).
    """
    clean = _check_entity_name(name, "queue")
    refuse_look_alike(session, Queue.name, clean, "queue")
    overlap = _check_fraction(overlap, "--overlap", 1.0)
    gold = _check_fraction(gold, "--gold", MAX_GOLD)
    if due_days is not None and not 0 < due_days <= MAX_DUE_DAYS:
        raise QueueSettingsError(f"due must be more than 0 and at most 365 days, got {due_days}")
    policy = relabel_policy.check(
        on_reject=on_reject,
        relabel_answers=relabel_answers,
        relabel_agree=relabel_agree,
        relabel_rounds=relabel_rounds,
    )
    connection = check_connection(connection)
    vendor_row = get_vendor(session, vendor)
    guideline_row = get_guideline(session, guideline)
    existing = session.scalar(select(Queue).where(Queue.name == clean))
    if existing is not None:
        if existing.guideline_id != guideline_row.id:
            pinned = session.get(Guideline, existing.guideline_id)
            assert pinned is not None
            raise QueuePinned(
                f"queue {clean!r} is pinned to guideline {guideline_ref(pinned)}; a new guideline "
                "version needs a new queue (and Label Studio project): "
                f"dataops queues create {clean}-v{guideline_row.version} --guideline "
                f"{guideline_ref(guideline_row)} ..."
            )
        wanted = (vendor_row.id, connection, overlap, gold, due_days)
        have = (existing.vendor_id, existing.connection, existing.overlap, existing.gold)
        if (*have, existing.due_days) != wanted or relabel_policy.of_queue(existing) != policy:
            raise Conflict(
                f"queue {clean!r} already exists with other settings (vendor id "
                f"{existing.vendor_id}, connection {existing.connection}, overlap "
                f"{existing.overlap}, gold {existing.gold}, due {existing.due_days} days, "
                f"{relabel_policy.of_queue(existing).describe()}); "
                "queues are not edited: create one under a new name"
            )
        return existing, False
    queue = Queue(
        name=clean,
        vendor_id=vendor_row.id,
        guideline_id=guideline_row.id,
        connection=connection,
        overlap=overlap,
        gold=gold,
        due_days=due_days,
        **policy.as_dict(),
    )
    session.add(queue)
    session.flush()
    events.record(
        session,
        "queue.created",
        "queue",
        queue.id,
        actor=actor,
        details={
            "name": clean,
            "vendor": vendor_row.name,
            "guideline": guideline_ref(guideline_row),
            "connection": connection,
            "overlap": overlap,
            "gold": gold,
            "due_days": due_days,
            **policy.as_dict(),
        },
    )
    return queue, True


def get_queue(session: Session, ref: str | int, *, vendor_id: int | None = None) -> Queue:
    """With ``vendor_id``, another vendor's queue is reported exactly like a missing one."""
    queue, text = _by_id_or_name(session, Queue, ref)
    if queue is None or (vendor_id is not None and queue.vendor_id != vendor_id):
        raise QueueNotFound(f"no queue {text!r}; see `dataops queues list`")
    return queue


def list_queues(session: Session, *, vendor: str | int | None = None) -> list[Queue]:
    stmt = select(Queue).order_by(Queue.name)
    if vendor is not None:
        stmt = stmt.where(Queue.vendor_id == get_vendor(session, vendor).id)
    return list(session.scalars(stmt))


def queue_out(session: Session, queue: Queue) -> QueueOut:
    vendor = session.get(Vendor, queue.vendor_id)
    guideline = session.get(Guideline, queue.guideline_id)
    assert vendor is not None
    assert guideline is not None
    batches = session.scalar(
        select(func.count()).select_from(Batch).where(Batch.queue_id == queue.id)
    )
    return QueueOut(
        id=queue.id,
        name=queue.name,
        vendor=vendor.name,
        vendor_id=vendor.id,
        guideline=guideline_ref(guideline),
        guideline_id=guideline.id,
        guideline_sha256=guideline.sha256,
        kind=guideline.kind,
        connection=queue.connection,
        overlap=queue.overlap,
        gold=queue.gold,
        due_days=queue.due_days,
        **relabel_policy.of_queue(queue).as_dict(),
        ls_project_id=queue.ls_project_id,
        batches=batches or 0,
        created_at=queue.created_at,
    )


# --- annotators ---------------------------------------------------------------------------


def _clean_email(email: str | None) -> str | None:
    if email is None or not email.strip():
        return None
    clean = email.strip().lower()
    if not _EMAIL.match(clean) or len(clean) > 256:
        raise DataopsError(f"{email!r} is not an email address")
    return clean


def _name_candidates(
    name: str | None, email: str | None, connection: str | None, ls_user_id: int | None
) -> list[str]:
    base = (name or email or f"{connection}:{ls_user_id}")[:100]
    candidates = [base]
    if connection is not None:
        candidates.append(f"{base} ({connection})")
        if ls_user_id is not None:
            candidates.append(f"{base} ({connection}:{ls_user_id})")
    return candidates


def _find_annotator(
    session: Session,
    *,
    connection: str | None,
    ls_user_id: int | None,
    email: str | None,
    name: str | None,
) -> Annotator | None:
    if ls_user_id is not None:
        found = session.scalar(
            select(Annotator).where(
                Annotator.connection == connection, Annotator.ls_user_id == ls_user_id
            )
        )
        if found is not None:
            return found
    if email is not None:
        for candidate in session.scalars(
            select(Annotator).where(Annotator.email == email).order_by(Annotator.id)
        ):
            if candidate.ls_user_id is None or ls_user_id is None:
                return candidate
            if candidate.connection == connection:
                raise AnnotatorConflict(
                    f"{email} is already mapped to Label Studio user {candidate.ls_user_id} on "
                    f"connection {connection!r}, not {ls_user_id}; one person has one account "
                    "per instance"
                )
    if name is not None and ls_user_id is None:
        return session.scalar(select(Annotator).where(Annotator.name == name))
    return None


def _reconcile(
    session: Session,
    annotator: Annotator,
    *,
    connection: str | None,
    ls_user_id: int | None,
    email: str | None,
    vendor_id: int | None,
    mapped_by: str,
    actor: str | None,
) -> None:
    changes: dict[str, Any] = {}
    if ls_user_id is not None and annotator.ls_user_id is None:
        annotator.connection, annotator.ls_user_id = connection, ls_user_id
        annotator.mapped_by = mapped_by
        changes.update(connection=connection, ls_user_id=ls_user_id, mapped_by=mapped_by)
    if email is not None and annotator.email != email:
        if annotator.email is None:
            annotator.email = email
            changes["email"] = email
        elif mapped_by == "manual":
            raise AnnotatorConflict(
                f"Label Studio user {annotator.ls_user_id} on {annotator.connection!r} is "
                f"already mapped to {annotator.email}, not {email}"
            )
    if vendor_id is not None and annotator.vendor_id != vendor_id:
        if annotator.vendor_id is not None:
            owner = session.get(Vendor, annotator.vendor_id)
            raise AnnotatorConflict(
                f"annotator {annotator.name!r} works for vendor "
                f"{owner.name if owner else annotator.vendor_id!r}; an annotator belongs to one "
                "vendor (give this person a separate account)"
            )
        annotator.vendor_id = vendor_id
        changes["vendor_id"] = vendor_id
    if changes:
        session.flush()
        events.record(
            session, "annotator.mapped", "annotator", annotator.id, actor=actor, details=changes
        )


def get_or_create_annotator(
    session: Session,
    *,
    connection: str | None,
    ls_user_id: int | None,
    email: str | None,
    vendor_id: int | None,
    mapped_by: str,
    name: str | None = None,
    actor: str | None = None,
) -> Annotator:
    """Find or record the person behind a label, and how we know (``mapped_by``).

    ``ls_user_id`` is the Label Studio user id on ``connection`` (ids are per instance);
    ``mapped_by`` is ``ls_user_id`` (the author of a pulled annotation), ``import`` (a label
    file) or ``manual`` (``dataops annotators map``). A person first seen by email in a label
    file gets their Label Studio id attached when it shows up. An annotator belongs to one
    vendor; mapping them to another raises AnnotatorConflict.
    """
    if mapped_by not in MAPPED_BY:
        raise DataopsError(f"mapped_by must be one of {', '.join(MAPPED_BY)}")
    if ls_user_id is not None:
        if connection is None:
            raise DataopsError("a Label Studio user id needs the connection it belongs to")
        connection = check_connection(connection)
        if not 0 < ls_user_id <= importers.MAX_USER_ID:
            raise DataopsError(f"Label Studio user id {ls_user_id} is out of range")
    clean_email = _clean_email(email)
    clean_name = name.strip()[:128] if name and name.strip() else None
    if ls_user_id is None and clean_email is None and clean_name is None:
        raise DataopsError("an annotator needs a Label Studio user id, an email or a name")
    found = _find_annotator(
        session,
        connection=connection,
        ls_user_id=ls_user_id,
        email=clean_email,
        name=clean_name,
    )
    if found is not None:
        _reconcile(
            session,
            found,
            connection=connection,
            ls_user_id=ls_user_id,
            email=clean_email,
            vendor_id=vendor_id,
            mapped_by=mapped_by,
            actor=actor,
        )
        return found
    for candidate in _name_candidates(clean_name, clean_email, connection, ls_user_id):
        stmt = (
            _insert(session, Annotator)
            .values(
                name=candidate,
                vendor_id=vendor_id,
                connection=connection if ls_user_id is not None else None,
                ls_user_id=ls_user_id,
                email=clean_email,
                mapped_by=mapped_by,
            )
            .on_conflict_do_nothing()
        )
        new_id = session.scalar(stmt.returning(Annotator.id))
        if new_id is not None:
            annotator = session.get(Annotator, new_id)
            assert annotator is not None
            events.record(
                session,
                "annotator.created",
                "annotator",
                new_id,
                actor=actor,
                details={
                    "name": candidate,
                    "connection": annotator.connection,
                    "ls_user_id": ls_user_id,
                    "vendor_id": vendor_id,
                    "mapped_by": mapped_by,
                },
            )
            return annotator
        if ls_user_id is not None:
            raced = _find_annotator(
                session, connection=connection, ls_user_id=ls_user_id, email=None, name=None
            )
            if raced is not None:
                return raced
    raise AnnotatorConflict(
        f"cannot name a new annotator {clean_name or clean_email!r}: the name is taken; "
        "map the person explicitly with `dataops annotators map`"
    )


def map_annotator(
    session: Session,
    *,
    connection: str,
    vendor: str | int,
    email: str,
    ls_user_id: int,
    actor: str | None = None,
) -> Annotator:
    """Tie a Label Studio account to a person and vendor before (or after) their labels arrive."""
    return get_or_create_annotator(
        session,
        connection=connection,
        ls_user_id=ls_user_id,
        email=email,
        vendor_id=get_vendor(session, vendor).id,
        mapped_by="manual",
        actor=actor,
    )


def annotator_out(session: Session, annotator: Annotator) -> AnnotatorOut:
    vendor = session.get(Vendor, annotator.vendor_id) if annotator.vendor_id is not None else None
    return AnnotatorOut(
        id=annotator.id,
        name=annotator.name,
        email=annotator.email,
        vendor=vendor.name if vendor else None,
        vendor_id=annotator.vendor_id,
        connection=annotator.connection,
        ls_user_id=annotator.ls_user_id,
        mapped_by=annotator.mapped_by,
        created_at=annotator.created_at,
    )


def list_annotators(
    session: Session, *, vendor: str | int | None = None, connection: str | None = None
) -> list[AnnotatorOut]:
    stmt = select(Annotator).order_by(Annotator.id)
    if vendor is not None:
        stmt = stmt.where(Annotator.vendor_id == get_vendor(session, vendor).id)
    if connection is not None:
        stmt = stmt.where(Annotator.connection == connection)
    return [annotator_out(session, a) for a in session.scalars(stmt)]


# --- label versions -----------------------------------------------------------------------


def labelstudio_source_id(connection: str, annotation_id: int | str) -> str:
    """Label Studio annotation ids are per instance, so the connection is part of the id."""
    return f"{connection}:{annotation_id}"


def _stamp(updated_at: datetime | None) -> str:
    return "-" if updated_at is None else updated_at.strftime("%Y%m%dT%H%M%S.%fZ")


def source_key(source: str, source_id: str, updated_at: datetime | str | None) -> str:
    """The idempotency key: the same annotation at the same edit time is stored once.

    Neither ``source`` nor the compact timestamp contains ':', so the key is unambiguous
    even when ``source_id`` does.
    """
    when = importers.parse_timestamp(updated_at) if isinstance(updated_at, str) else updated_at
    return f"{source}:{source_id}:{_stamp(_aware(when))}"


def _head(
    session: Session, image_id: int, annotator_id: int | None, task: str, batch_id: int | None
) -> LabelVersion | None:
    """The live end of the chain for (image, annotator, task, batch): its newest row."""
    return session.scalar(
        select(LabelVersion)
        .where(
            LabelVersion.image_id == image_id,
            LabelVersion.task == task,
            LabelVersion.annotator_id == annotator_id,
            LabelVersion.batch_id == batch_id,
        )
        .order_by(LabelVersion.id.desc())
        .limit(1)
    )


def _lock_image(session: Session, image_id: int) -> Image:
    """Serialise label writes per image on PostgreSQL, so a chain never forks."""
    image = session.scalar(select(Image).where(Image.id == image_id).with_for_update())
    if image is None:
        raise ImageNotFound(f"no image with id {image_id}")
    return image


def _resolve_guideline(
    session: Session, guideline_id: int | None, batch_id: int | None
) -> Guideline | None:
    batch_guideline: int | None = None
    if batch_id is not None:
        batch = session.get(Batch, batch_id)
        if batch is None:
            raise NotFound(f"no batch {batch_id}")
        if batch.queue_id is not None:
            queue = session.get(Queue, batch.queue_id)
            batch_guideline = queue.guideline_id if queue is not None else None
    if guideline_id is not None and batch_guideline not in (None, guideline_id):
        raise InvalidLabel(
            f"batch {batch_id} is labeled under guideline id {batch_guideline}, not {guideline_id}"
        )
    chosen = guideline_id if guideline_id is not None else batch_guideline
    if chosen is None:
        return None
    guideline = session.get(Guideline, chosen)
    if guideline is None:
        raise GuidelineNotFound(f"no guideline with id {chosen}")
    return guideline


def add_label_version(
    session: Session,
    *,
    image_id: int,
    payload: dict[str, Any],
    source: str,
    source_id: str,
    source_updated_at: datetime | str | None = None,
    annotator_id: int | None = None,
    batch_id: int | None = None,
    guideline_id: int | None = None,
    task: str = "default",
    status: str = SUBMITTED,
    actor: str | None = None,
) -> tuple[LabelVersion, bool]:
    """Append a label version; ``(version, created)``, idempotent on the source key.

    The new version supersedes the annotator's live version for the same image, task and
    batch. An older edit of an annotation whose newer edit is already stored changes nothing
    (Label Studio had already replaced it) and returns the live version. The payload is
    normalised, and checked against the guideline (given, or the batch's queue's) when known.
    """
    if not _SOURCE.match(source):
        raise DataopsError(f"source {source!r} must be a short lower-case word (csv, labelstudio)")
    if not source_id or len(source_id) > 128:
        raise DataopsError("source_id must be 1 to 128 characters")
    if not task.strip() or len(task) > 128:
        raise DataopsError("task must be 1 to 128 characters")
    if status not in LABEL_STATUSES:
        raise InvalidLabel(f"status must be one of {', '.join(LABEL_STATUSES)}, got {status!r}")
    updated = (
        importers.parse_timestamp(source_updated_at)
        if isinstance(source_updated_at, str)
        else _aware(source_updated_at)
    )
    key = source_key(source, source_id, updated)
    _lock_image(session, image_id)
    existing = session.scalar(select(LabelVersion).where(LabelVersion.source_key == key))
    if existing is not None:
        return existing, False
    guideline = _resolve_guideline(session, guideline_id, batch_id)
    clean = normalise_payload(
        payload,
        kind=guideline.kind if guideline else None,
        classes=list(guideline.classes) if guideline else None,
    )
    if annotator_id is not None and session.get(Annotator, annotator_id) is None:
        raise AnnotatorNotFound(f"no annotator with id {annotator_id}")
    head = _head(session, image_id, annotator_id, task, batch_id)
    head_time = _aware(head.source_updated_at) if head is not None else None
    if (
        head is not None
        and (head.source, head.source_id) == (source, source_id)
        and head_time is not None
        and updated is not None
        and updated < head_time
    ):
        return head, False
    version = LabelVersion(
        image_id=image_id,
        annotator_id=annotator_id,
        batch_id=batch_id,
        guideline_id=guideline.id if guideline else None,
        task=task,
        payload=clean,
        source=source,
        source_id=source_id,
        source_updated_at=updated,
        source_key=key,
        supersedes_id=head.id if head is not None else None,
        status=status,
        created_by=actor,
    )
    session.add(version)
    session.flush()
    events.record(
        session,
        "label.added",
        "label_version",
        version.id,
        actor=actor,
        details={
            "image_id": image_id,
            "task": task,
            "source": source,
            "source_id": source_id,
            "status": status,
            "supersedes_id": version.supersedes_id,
        },
    )
    return version, True


def latest_by_source(session: Session, source: str, source_id: str) -> LabelVersion | None:
    """The newest stored version of one annotation (e.g. a Label Studio annotation id)."""
    return session.scalar(
        select(LabelVersion)
        .where(LabelVersion.source == source, LabelVersion.source_id == source_id)
        .order_by(LabelVersion.id.desc())
        .limit(1)
    )


def mark_deleted(
    session: Session,
    *,
    source: str,
    source_id: str,
    deleted_at: datetime | None = None,
    actor: str | None = None,
) -> tuple[LabelVersion | None, bool]:
    """Record that an annotation was deleted at its source by appending a ``deleted`` version.

    Nothing is erased. When the annotation is unknown, already deleted, or was already
    superseded by another label of the same annotator, nothing is appended.
    """
    version = latest_by_source(session, source, source_id)
    if version is None:
        return None, False
    _lock_image(session, version.image_id)
    head = _head(session, version.image_id, version.annotator_id, version.task, version.batch_id)
    assert head is not None
    if head.status == DELETED or (head.source, head.source_id) != (source, source_id):
        return head, False
    deletion = LabelVersion(
        image_id=head.image_id,
        annotator_id=head.annotator_id,
        batch_id=head.batch_id,
        guideline_id=head.guideline_id,
        task=head.task,
        payload={},
        source=source,
        source_id=source_id,
        source_updated_at=_aware(deleted_at),
        source_key=f"{source}:{source_id}:deleted-{head.id}",
        supersedes_id=head.id,
        status=DELETED,
        created_by=actor,
    )
    session.add(deletion)
    session.flush()
    events.record(
        session,
        "label.deleted",
        "label_version",
        deletion.id,
        actor=actor,
        details={"image_id": head.image_id, "supersedes_id": head.id, "source_id": source_id},
    )
    return deletion, True


def set_status(
    session: Session,
    version_id: int,
    status: str,
    *,
    actor: str | None = None,
    reason: str | None = None,
) -> LabelVersion:
    """An audit verdict on a live version: accepted, rejected or adjudicated."""
    if status not in AUDIT_STATUSES:
        raise InvalidLabel(f"status must be one of {', '.join(AUDIT_STATUSES)}, got {status!r}")
    version = session.get(LabelVersion, version_id)
    if version is None:
        raise LabelNotFound(f"no label version {version_id}; see `dataops labels list`")
    _lock_image(session, version.image_id)
    head = _head(session, version.image_id, version.annotator_id, version.task, version.batch_id)
    if head is not None and head.id != version.id:
        raise Conflict(
            f"label version {version_id} was superseded by version {head.id}; audit the live one"
        )
    if version.status == DELETED:
        raise Conflict(f"label version {version_id} records a deletion; there is nothing to audit")
    if version.status == status:
        return version
    previous = version.status
    version.status = status
    session.flush()
    events.record(
        session,
        "label.status",
        "label_version",
        version.id,
        actor=actor,
        details={"from": previous, "to": status, "reason": reason},
    )
    return version


def _live_ids(
    *,
    image_ids: Sequence[int] | None = None,
    task: str | None = None,
    batch_id: int | None = None,
) -> Any:
    stmt = select(func.max(LabelVersion.id)).group_by(
        LabelVersion.image_id, LabelVersion.annotator_id, LabelVersion.task, LabelVersion.batch_id
    )
    if image_ids is not None:
        stmt = stmt.where(LabelVersion.image_id.in_(list(image_ids)))
    if task is not None:
        stmt = stmt.where(LabelVersion.task == task)
    if batch_id is not None:
        stmt = stmt.where(LabelVersion.batch_id == batch_id)
    return stmt


def live_versions(
    session: Session,
    *,
    image_ids: Sequence[int] | None = None,
    task: str | None = None,
    batch_id: int | None = None,
) -> list[LabelVersion]:
    """The current label of each annotator per image, task and batch (deletions left out)."""
    ids = _live_ids(image_ids=image_ids, task=task, batch_id=batch_id)
    return list(
        session.scalars(
            select(LabelVersion)
            .where(LabelVersion.id.in_(ids), LabelVersion.status != DELETED)
            .order_by(LabelVersion.id)
        )
    )


def accepted_label(session: Session, image_id: int, task: str) -> LabelVersion | None:
    """The label a manifest uses: an adjudicated live version, else the newest accepted one."""
    candidates = [
        v
        for v in live_versions(session, image_ids=[image_id], task=task)
        if v.status in (ADJUDICATED, ACCEPTED)
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda v: (v.status == ADJUDICATED, v.id))


def list_labels(
    session: Session,
    *,
    image_id: int | None = None,
    batch_id: int | None = None,
    status: str | None = None,
    task: str | None = None,
    live: bool = False,
    limit: int | None = None,
) -> list[LabelVersion]:
    stmt = select(LabelVersion).order_by(LabelVersion.id)
    if image_id is not None:
        stmt = stmt.where(LabelVersion.image_id == image_id)
    if batch_id is not None:
        stmt = stmt.where(LabelVersion.batch_id == batch_id)
    if status is not None:
        stmt = stmt.where(LabelVersion.status == status)
    if task is not None:
        stmt = stmt.where(LabelVersion.task == task)
    if live:
        live_ids = _live_ids(
            image_ids=[image_id] if image_id is not None else None, task=task, batch_id=batch_id
        )
        stmt = stmt.where(LabelVersion.id.in_(live_ids), LabelVersion.status != DELETED)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def label_outs(session: Session, versions: Sequence[LabelVersion]) -> list[LabelVersionOut]:
    image_ids = {v.image_id for v in versions}
    annotator_ids = {v.annotator_id for v in versions if v.annotator_id is not None}
    guideline_ids = {v.guideline_id for v in versions if v.guideline_id is not None}
    shas: dict[int, str] = {}
    for chunk in _chunks(sorted(image_ids)):
        shas.update(
            (image_id, sha)
            for image_id, sha in session.execute(
                select(Image.id, Image.sha256).where(Image.id.in_(chunk))
            )
        )
    names = {
        annotator_id: name
        for annotator_id, name in session.execute(
            select(Annotator.id, Annotator.name).where(Annotator.id.in_(annotator_ids))
        )
    }
    refs = {
        g.id: guideline_ref(g)
        for g in session.scalars(select(Guideline).where(Guideline.id.in_(guideline_ids)))
    }
    return [
        LabelVersionOut(
            id=v.id,
            image_id=v.image_id,
            sha256=shas[v.image_id],
            annotator=names.get(v.annotator_id) if v.annotator_id is not None else None,
            annotator_id=v.annotator_id,
            batch_id=v.batch_id,
            guideline=refs.get(v.guideline_id) if v.guideline_id is not None else None,
            task=v.task,
            payload=v.payload,
            status=v.status,
            source=v.source,
            source_id=v.source_id,
            source_updated_at=v.source_updated_at,
            supersedes_id=v.supersedes_id,
            created_by=v.created_by,
            created_at=v.created_at,
        )
        for v in versions
    ]


# --- label import -------------------------------------------------------------------------


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def _uri_candidates(uri: str, base_dir: Path | None) -> list[str]:
    """A uri as written, and for local paths the absolute path ingest would have recorded."""
    candidates = [uri]
    path_text = uri.removeprefix("file://") if uri.startswith("file://") else uri
    if "://" not in path_text and path_text:
        path = Path(path_text).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        for form in (str(path.absolute()), str(path.resolve())):
            if form not in candidates:
                candidates.append(form)
    return candidates


def _images_by_uri(session: Session, uris: Sequence[str]) -> dict[str, Image]:
    found: dict[str, Image] = {}
    for chunk in _chunks(sorted(set(uris))):
        rows = session.execute(
            select(ImageLocation.uri, Image)
            .join(Image, Image.id == ImageLocation.image_id)
            .where(ImageLocation.uri.in_(chunk))
        )
        found.update((uri, image) for uri, image in rows)
        for image in session.scalars(select(Image).where(Image.uri.in_(chunk))):
            found.setdefault(image.uri, image)
    return found


def _images_by_task_key(session: Session, keys: Sequence[str]) -> dict[str, Image]:
    """Tasks dataops pushed name their image only by an opaque task key (labeling.tasks)."""
    if not keys:
        return {}
    from dataops.labeling.tasks import images_for_task_keys

    refs = images_for_task_keys(session, keys)
    ids = sorted({ref.image_id for ref in refs.values()})
    by_id: dict[int, Image] = {}
    for chunk in _chunks(ids):
        by_id.update((i.id, i) for i in session.scalars(select(Image).where(Image.id.in_(chunk))))
    return {key: by_id[ref.image_id] for key, ref in refs.items() if ref.image_id in by_id}


def _unknown_image(row: importers.LabelRow) -> str:
    if row.image_sha256:
        return (
            f"no image with sha256 {row.image_sha256} in the catalog; ingest it first "
            "(dataops ingest)"
        )
    ref = row.image_uri or ""
    if row.task_key and not ref:
        return (
            f"no task key {row.task_key} in this catalog: the task was not pushed by it; give "
            "data.image (with --path-map) or data.dataops_sha256"
        )
    hint = (
        "; map Label Studio's paths to where the files were ingested from with --path-map "
        "PREFIX=ROOT (HTTP: path_map), e.g. /data/upload/=/srv/label-studio/media/upload/"
        if ref.startswith(("/data/", "s3://", "gs://", "http://", "https://"))
        else ""
    )
    return (
        f"no image recorded at {ref}; give its sha256 or a path it was ingested from (see "
        f"`dataops images show` for its locations){hint}"
    )


def _resolve_images(
    session: Session,
    rows: Sequence[importers.LabelRow],
    base_dir: Path | None,
    path_map: Sequence[tuple[str, str]] = (),
) -> tuple[dict[int, Image], list[RowError]]:
    """Image per row position, by sha256, task key, or recorded location (through the path
    map); rows whose image is unknown or unusable become errors."""
    shas = sorted({r.image_sha256 for r in rows if r.image_sha256})
    by_sha: dict[str, Image] = {}
    for chunk in _chunks(shas):
        by_sha.update(
            (i.sha256, i) for i in session.scalars(select(Image).where(Image.sha256.in_(chunk)))
        )
    by_key = _images_by_task_key(
        session, sorted({r.task_key for r in rows if r.task_key and not r.image_sha256})
    )
    candidates = {
        r.image_uri: [
            c
            for mapped in importers.mapped_uris(r.image_uri, path_map)
            for c in _uri_candidates(mapped, base_dir)
        ]
        for r in rows
        if r.image_uri
    }
    by_uri = _images_by_uri(session, [c for cs in candidates.values() for c in cs])
    resolved: dict[int, Image] = {}
    errors: list[RowError] = []
    for position, row in enumerate(rows):
        ref = row.image_sha256 or row.image_uri or row.task_key or ""
        if row.image_sha256:
            image = by_sha.get(row.image_sha256)
        elif row.task_key and row.task_key in by_key:
            image = by_key[row.task_key]
        else:
            image = next(
                (by_uri[c] for c in candidates.get(row.image_uri or "", []) if c in by_uri), None
            )
        if image is None:
            message = _unknown_image(row)
        elif image.status == QUARANTINED:
            message = (
                f"image {image.sha256[:12]} is quarantined ({image.quarantine_reason}); "
                "quarantined images are not labeled — drop this row"
            )
        else:
            resolved[position] = image
            continue
        errors.append(
            RowError(row=row.row, line=row.line, field=row.image_field, value=ref, message=message)
        )
    return resolved, errors


def _csv_source_id(
    image: Image, annotator_id: int | None, payload: dict[str, Any], task: str
) -> str:
    """CSV rows carry no id: the same label of the same image by the same person is one row."""
    body = json.dumps([image.sha256, annotator_id, payload, task], sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def import_labels(
    session: Session,
    data: bytes,
    *,
    filename: str,
    fmt: str | None = None,
    accept: bool = False,
    task: str | None = None,
    guideline: str | None = None,
    vendor: str | int | None = None,
    connection: str = DEFAULT_CONNECTION,
    base_dir: Path | None = None,
    path_map: Sequence[str] = (),
    actor: str | None = None,
) -> ImportReport:
    """Import a CSV (``image,annotator,label``) or a Label Studio JSON export, all or nothing.

    Every row is checked first (image known and usable, label valid for the guideline); any
    error means nothing is written and the report lists each problem. Re-importing a file
    creates nothing. ``accept`` stores labels vetted elsewhere as ``accepted``. The task
    defaults to the guideline's name, else ``default``. Relative paths in a CSV are read
    relative to ``base_dir`` (the file's folder). ``path_map`` (``PREFIX=ROOT`` entries) maps
    Label Studio's own image paths to the locations images were ingested from.
    """
    text = importers.decode(data, filename)
    chosen = fmt or importers.detect_format(filename, text)
    if chosen not in importers.FORMATS:
        raise DataopsError(f"--format must be one of {', '.join(importers.FORMATS)}")
    guideline_row = get_guideline(session, guideline) if guideline else None
    vendor_id = get_vendor(session, vendor).id if vendor is not None else None
    pairs = importers.parse_path_map(path_map)
    if chosen == "labelstudio":
        connection = check_connection(connection)
    task_name = (task or (guideline_row.name if guideline_row else "default")).strip()
    if not task_name or len(task_name) > 128:
        raise DataopsError("--task must be 1 to 128 characters")
    parsed = importers.parse_file(
        text,
        chosen,
        kind=guideline_row.kind if guideline_row else None,
        classes=list(guideline_row.classes) if guideline_row else None,
    )
    images, image_errors = _resolve_images(session, parsed.rows, base_dir, pairs)
    unique: dict[tuple[Any, ...], RowError] = {}
    for error in [*parsed.errors, *image_errors]:
        unique.setdefault((error.row, error.line, error.field, error.message), error)
    report = ImportReport(
        rows=parsed.annotations,
        skipped=parsed.skipped,
        errors=sorted(unique.values(), key=lambda e: (e.row, e.field)),
    )
    if report.errors:
        return report
    status = ACCEPTED if accept else SUBMITTED
    annotators: dict[importers.AnnotatorRef, int] = {}
    for position, row in enumerate(parsed.rows):
        annotator_id: int | None = None
        if row.annotator is not None:
            if row.annotator not in annotators:
                annotators[row.annotator] = get_or_create_annotator(
                    session,
                    connection=connection if row.annotator.ls_user_id is not None else None,
                    ls_user_id=row.annotator.ls_user_id,
                    email=row.annotator.email,
                    name=row.annotator.name,
                    vendor_id=vendor_id,
                    mapped_by="import",
                    actor=actor,
                ).id
            annotator_id = annotators[row.annotator]
        image = images[position]
        if row.annotation_id is None:
            source = SOURCE_CSV
            source_id = _csv_source_id(image, annotator_id, row.payload, task_name)
        else:
            source = SOURCE_LABELSTUDIO
            source_id = labelstudio_source_id(connection, row.annotation_id)
        _, created = add_label_version(
            session,
            image_id=image.id,
            payload=row.payload,
            source=source,
            source_id=source_id,
            source_updated_at=row.updated_at,
            annotator_id=annotator_id,
            guideline_id=guideline_row.id if guideline_row else None,
            task=task_name,
            status=status,
            actor=actor,
        )
        if created:
            report.created += 1
        else:
            report.existing += 1
    events.record(
        session,
        "labels.imported",
        "label_file",
        hashlib.sha256(data).hexdigest(),
        actor=actor,
        details={
            "file": filename,
            "format": chosen,
            "task": task_name,
            "guideline": guideline_ref(guideline_row) if guideline_row else None,
            "status": status,
            **report.model_dump(include={"rows", "created", "existing", "skipped"}),
        },
    )
    return report
