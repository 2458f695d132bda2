"""Annotators: the people behind labels, their vendor and their Label Studio accounts."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.database.dialect import insert
from dataops.errors import DataopsError
from dataops.events import service as events
from dataops.labeling import importers
from dataops.labeling.errors import (
    AnnotatorConflict,
)
from dataops.labeling.models import (
    Annotator,
    Vendor,
)
from dataops.labeling.queues import check_connection
from dataops.labeling.schemas import (
    AnnotatorMap,
    AnnotatorOut,
)
from dataops.labeling.vendors import get_vendor

MAPPED_BY = ("ls_user_id", "import", "manual")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


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
    return _create_annotator(
        session,
        name=clean_name,
        email=clean_email,
        connection=connection,
        ls_user_id=ls_user_id,
        vendor_id=vendor_id,
        mapped_by=mapped_by,
        actor=actor,
    )


def _create_annotator(
    session: Session,
    *,
    name: str | None,
    email: str | None,
    connection: str | None,
    ls_user_id: int | None,
    vendor_id: int | None,
    mapped_by: str,
    actor: str | None,
) -> Annotator:
    """A new annotator under the first free name of its candidates; when a concurrent writer
    recorded the same Label Studio account first, that one."""
    for candidate in _name_candidates(name, email, connection, ls_user_id):
        stmt = (
            insert(session, Annotator)
            .values(
                name=candidate,
                vendor_id=vendor_id,
                connection=connection if ls_user_id is not None else None,
                ls_user_id=ls_user_id,
                email=email,
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
        f"cannot name a new annotator {name or email!r}: the name is taken; "
        "map the person explicitly with `dataops annotators map`"
    )


def map_annotator(
    session: Session, request: AnnotatorMap, *, actor: str | None = None
) -> Annotator:
    """Tie a Label Studio account to a person and vendor before (or after) their labels arrive."""
    connection = check_connection(request.connection)
    return get_or_create_annotator(
        session,
        connection=connection,
        ls_user_id=request.ls_user_id,
        email=request.email,
        vendor_id=get_vendor(session, request.vendor).id,
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
