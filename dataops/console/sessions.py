"""Console sign-in: an API token is exchanged for an opaque browser session.

The browser holds a random 256-bit session id in an HttpOnly cookie; the catalog stores only
its SHA-256, so a copy of the database signs nobody in. A session ends at sign-out, after
``console.idle_timeout`` seconds without a request, ``console.absolute_timeout`` seconds after
sign-in, or as soon as its API token is revoked or expires or its user is disabled: the
console never outlives the credential it was given.

Each session has a CSRF token derived from the session id (HMAC), so it needs no storage and
cannot be computed from the stored hash. This module is free of web frameworks; the cookie
and the forms are handled in ``dataops.console.deps`` and ``dataops.console.pages.signin``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dataops.auth import service as auth_service
from dataops.auth.models import ApiToken, User
from dataops.config import ConsoleSettings
from dataops.console.models import ConsoleSession
from dataops.database.dialect import as_utc, as_utc_or_none
from dataops.db import utcnow
from dataops.events import service as events

COOKIE_NAME = "dataops_console"
_SESSION_ID_BYTES = 32
# Writing last_seen_at on every page view would turn every read into a write.
_SEEN_RESOLUTION = timedelta(minutes=1)
_CSRF_CONTEXT = b"dataops-console-csrf"


@dataclass(frozen=True)
class NewSession:
    """``session_id`` exists only here and in the browser's cookie."""

    session_id: str
    row: ConsoleSession
    user: User


@dataclass(frozen=True)
class Viewer:
    """Who is signed in, as plain values: still readable after the transaction is gone
    (an error page renders after the request's session rolled back)."""

    name: str
    role: str
    vendor_id: int | None


@dataclass(frozen=True)
class ActiveSession:
    row: ConsoleSession
    user: User
    csrf_token: str

    @property
    def viewer(self) -> Viewer:
        return Viewer(name=self.user.name, role=self.user.role, vendor_id=self.user.vendor_id)


def hash_session_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_token_for(session_id: str) -> str:
    return hmac.new(session_id.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def csrf_matches(active: ActiveSession, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(active.csrf_token, presented)


def _token_prefix(token: str) -> str:
    # Only called after authenticate() accepted the token: dok_<prefix>_<secret>.
    return token.split("_", 2)[1]


def sign_in(
    session: Session, token: str, *, settings: ConsoleSettings, now: datetime | None = None
) -> NewSession:
    """A new session for the token's user; raises ``Unauthenticated`` for a bad token."""
    now = now or utcnow()
    user = auth_service.authenticate(session, token.strip(), now=now)
    token_row = auth_service.get_token(session, _token_prefix(token.strip()))
    purge_expired(session, now=now)
    session_id = secrets.token_urlsafe(_SESSION_ID_BYTES)
    row = ConsoleSession(
        id_hash=hash_session_id(session_id),
        user_id=user.id,
        token_id=token_row.id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=settings.absolute_timeout),
    )
    session.add(row)
    session.flush()
    events.record(
        session,
        "console.signed_in",
        "user",
        user.name,
        actor=f"user:{user.name}",
        details={"token": token_row.prefix},
    )
    return NewSession(session_id=session_id, row=row, user=user)


def resume(
    session: Session,
    session_id: str | None,
    *,
    settings: ConsoleSettings,
    now: datetime | None = None,
) -> ActiveSession | None:
    """The live session behind a cookie, or None (an expired one is deleted on the way)."""
    if not session_id:
        return None
    now = now or utcnow()
    found = session.execute(
        select(ConsoleSession, User, ApiToken)
        .join(User, User.id == ConsoleSession.user_id)
        .join(ApiToken, ApiToken.id == ConsoleSession.token_id)
        .where(ConsoleSession.id_hash == hash_session_id(session_id))
    ).first()
    if found is None:
        return None
    row, user, token = found
    if not _live(row, user, token, settings=settings, now=now):
        session.delete(row)
        session.flush()
        return None
    if now - as_utc(row.last_seen_at) >= _SEEN_RESOLUTION:
        row.last_seen_at = now
        session.flush()
    return ActiveSession(row=row, user=user, csrf_token=csrf_token_for(session_id))


def _live(
    row: ConsoleSession, user: User, token: ApiToken, *, settings: ConsoleSettings, now: datetime
) -> bool:
    token_expires = as_utc_or_none(token.expires_at)
    idle_limit = as_utc(row.last_seen_at) + timedelta(seconds=settings.idle_timeout)
    return (
        as_utc(row.expires_at) > now
        and idle_limit > now
        and token.revoked_at is None
        and (token_expires is None or token_expires > now)
        and not user.disabled
    )


def sign_out(session: Session, session_id: str | None) -> bool:
    """Deletes the session row; True when there was one."""
    if not session_id:
        return False
    row = session.scalar(
        select(ConsoleSession).where(ConsoleSession.id_hash == hash_session_id(session_id))
    )
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def purge_expired(session: Session, *, now: datetime | None = None) -> int:
    """Deletes sessions past their absolute expiry (idle ones go when next presented)."""
    result = session.execute(
        delete(ConsoleSession).where(ConsoleSession.expires_at <= (now or utcnow()))
    )
    return int(getattr(result, "rowcount", 0) or 0)
