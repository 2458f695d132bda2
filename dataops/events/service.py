"""The event log: one append-only row per state change (who, what, when, why)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from dataops.events.models import Event

SYSTEM_ACTOR = "system"


def record(
    session: Session,
    action: str,
    entity_type: str,
    entity_id: object,
    *,
    actor: str | None = None,
    details: dict[str, Any] | None = None,
) -> Event:
    """Log a state change in the caller's transaction, so the event and the change commit together."""
    event = Event(
        actor=actor or SYSTEM_ACTOR,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        details=details or {},
    )
    session.add(event)
    session.flush()
    return event
