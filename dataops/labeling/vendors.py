"""Vendors: the companies that label, each with its queues and annotators."""

from __future__ import annotations

import re
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dataops.database.dialect import insert
from dataops.errors import DataopsError
from dataops.events import service as events
from dataops.labeling.errors import (
    VendorNotFound,
)
from dataops.labeling.models import (
    Annotator,
    Queue,
    Vendor,
)
from dataops.labeling.schemas import (
    VendorOut,
)
from dataops.names import refuse_look_alike

_NAME = re.compile(r"^\w[\w .@+-]{0,127}$")
_ID = re.compile(r"[0-9]{1,9}")

Named = TypeVar("Named", Vendor, Queue, Annotator)


def check_entity_name(name: str, what: str) -> str:
    clean = name.strip()
    if not _NAME.match(clean) or clean.isdigit():
        raise DataopsError(
            f"{what} name {name!r} must start with a letter or digit, use letters, digits, "
            "spaces, '.', '_', '-', '@' or '+', be at most 128 characters and not be only digits"
        )
    return clean


def create_vendor(session: Session, name: str, *, actor: str | None = None) -> tuple[Vendor, bool]:
    """Idempotent: an existing vendor of that name is returned with ``created=False``."""
    clean = check_entity_name(name, "vendor")
    refuse_look_alike(session, Vendor.name, clean, "vendor")
    stmt = insert(session, Vendor).values(name=clean).on_conflict_do_nothing()
    new_id = session.scalar(stmt.returning(Vendor.id))
    vendor = session.scalar(select(Vendor).where(Vendor.name == clean))
    assert vendor is not None
    if new_id is not None:
        events.record(session, "vendor.created", "vendor", vendor.id, actor=actor)
    return vendor, new_id is not None


def by_id_or_name(session: Session, model: type[Named], ref: str | int) -> tuple[Named | None, str]:
    """A row by its numeric id or its unique name, and the reference as the user typed it.

    Names are never only digits, so a longer run of digits (or non-ASCII digits) matches no row
    instead of overflowing the id column.
    """
    text = str(ref).strip()
    if _ID.fullmatch(text):
        return session.get(model, int(text)), text
    return session.scalar(select(model).where(model.name == text)), text


def get_vendor(session: Session, ref: str | int) -> Vendor:
    vendor, text = by_id_or_name(session, Vendor, ref)
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
