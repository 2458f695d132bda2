"""Vendor queues: one vendor, one guideline version, one Label Studio connection.

Label Studio OSS has no per-project permissions; every user of an instance can open every
project on it. A vendor that must not see other vendors' work gets its own Label Studio
instance, configured as a named connection (``DATAOPS_LABELSTUDIO_CONNECTIONS__<NAME>__URL`` /
``__TOKEN``), and its queues use it.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dataops.audits import policy as relabel_policy
from dataops.errors import Conflict
from dataops.events import service as events
from dataops.labeling.errors import (
    QueueNotFound,
    QueuePinned,
    QueueSettingsError,
)
from dataops.labeling.guideline_versions import get_guideline, guideline_ref
from dataops.labeling.models import (
    Guideline,
    Queue,
    Vendor,
)
from dataops.labeling.schemas import DEFAULT_CONNECTION, QueueCreate, QueueOut, parse_request
from dataops.labeling.vendors import by_id_or_name, check_entity_name, get_vendor
from dataops.names import refuse_look_alike
from dataops.selection.models import Batch

MAX_GOLD = 0.5
MAX_DUE_DAYS = 365.0
_DUE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([hdw]?)\s*$", re.IGNORECASE)


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


def parse_due(text: str) -> float:
    """``3d``, ``12h``, ``2w`` or a plain number of days → days."""
    match = _DUE.match(text)
    if not match:
        raise QueueSettingsError(
            f"{{due}} {_literal(repr(text))}: give a duration like 3d, 12h or 2w", fields=("due",)
        )
    amount = float(match.group(1))
    unit = match.group(2).lower() or "d"
    days = amount * {"h": 1 / 24, "d": 1.0, "w": 7.0}[unit]
    if not 0 < days <= MAX_DUE_DAYS:
        raise QueueSettingsError(
            f"{{due}} {_literal(repr(text))} must be more than 0 and at most 365 days",
            fields=("due",),
        )
    return days


def _literal(text: str) -> str:
    """User text inside an error template that names fields (braces are placeholders there)."""
    return text.replace("{", "{{").replace("}", "}}")


def _check_fraction(value: float, field: str, maximum: float) -> float:
    if not 0.0 <= value <= maximum:
        percent = " (a fraction: 0.2 means 20 %)" if value > 1 else ""
        raise QueueSettingsError(
            f"{{{field}}} must be between 0 and {maximum:g}{percent}, got {value:g}",
            fields=(field,),
        )
    return float(value)


def queue_request(**values: Any) -> QueueCreate:
    """A queue request from keyword values (the CLI's options, a script's arguments); a bad
    value raises QueueSettingsError naming its field."""
    for field, maximum in (("overlap", 1.0), ("gold", MAX_GOLD)):
        value = values.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            _check_fraction(value, field, maximum)
    if isinstance(values.get("due"), str):
        parse_due(values["due"])
    return parse_request(QueueCreate, values, QueueSettingsError)


def create_queue(
    session: Session, request: QueueCreate, *, actor: str | None = None
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
    name, vendor, guideline = request.name, request.vendor, request.guideline
    due_days = parse_due(request.due) if request.due is not None else None
    clean = check_entity_name(name, "queue")
    refuse_look_alike(session, Queue.name, clean, "queue")
    overlap = _check_fraction(request.overlap, "overlap", 1.0)
    gold = _check_fraction(request.gold, "gold", MAX_GOLD)
    policy = relabel_policy.check(
        on_reject=request.on_reject,
        relabel_answers=request.relabel_answers,
        relabel_agree=request.relabel_agree,
        relabel_rounds=request.relabel_rounds,
        accept_rule=request.accept_rule,
    )
    connection = check_connection(request.connection)
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
    queue, text = by_id_or_name(session, Queue, ref)
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
