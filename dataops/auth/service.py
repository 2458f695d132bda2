"""Users, roles and API tokens.

A token is ``dok_<prefix>_<secret>``: the prefix is public and finds the row, the secret has
256 bits of entropy and only ``HMAC-SHA256(salt, secret)`` is stored. A slow password hash
(argon2, bcrypt) protects low-entropy secrets from guessing; a random 256-bit secret cannot
be guessed, so a fast hash is enough and keeps authentication from costing ~50 ms of CPU
on every request. The secret is never logged or stored, and error messages never echo it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.auth.errors import (
    InvalidUser,
    TokenNotFound,
    Unauthenticated,
    UserExists,
    UserNotFound,
)
from dataops.auth.models import ROLES, ApiToken, User
from dataops.auth.schemas import NAME_PATTERN, TokenOut, UserOut
from dataops.database.dialect import as_utc, as_utc_or_none
from dataops.db import utcnow
from dataops.events import service as events
from dataops.labeling.models import Vendor
from dataops.names import refuse_look_alike

TOKEN_SCHEME = "dok"  # noqa: S105 - the public scheme of the token format
_PREFIX_BYTES = 6
_SECRET_BYTES = 32
_TOKEN_RE = re.compile(r"^dok_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_PREFIX_RE = re.compile(r"^[0-9a-f]{12}$")
_DURATION_RE = re.compile(r"^(\d{1,6})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# Writing last_used_at on every request would turn every read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)
_INVALID = "invalid, expired or revoked token"


def parse_duration(text: str) -> timedelta | None:
    """``30d``, ``12h``, ``90m``, ``2w``; ``never`` for no expiry."""
    value = text.strip().lower()
    if value == "never":
        return None
    match = _DURATION_RE.match(value)
    if not match or int(match.group(1)) == 0:
        raise InvalidUser(f"expiry must look like 30d, 12h, 90m, 2w or never, got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _digest(salt_hex: str, secret: str) -> str:
    return hmac.new(bytes.fromhex(salt_hex), secret.encode(), hashlib.sha256).hexdigest()


def _vendor_id(session: Session, name: str) -> int:
    vendor_id = session.scalar(select(Vendor.id).where(Vendor.name == name))
    if vendor_id is None:
        raise InvalidUser(f"no vendor {name!r} (create it with `dataops vendors create`)")
    return vendor_id


def create_user(
    session: Session, name: str, role: str, *, vendor: str | None = None, actor: str | None
) -> User:
    if role not in ROLES:
        raise InvalidUser(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not re.match(NAME_PATTERN, name):
        raise InvalidUser(
            f"user names are 1-128 letters, digits and _ . @ - (starting with a letter or digit), got {name!r}"
        )
    if (role == "vendor") != (vendor is not None):
        raise InvalidUser(
            "a vendor user needs {vendor}, and only vendor users may have one",
            fields=("vendor",),
        )
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise UserExists(f"user {name!r} already exists")
    refuse_look_alike(session, User.name, name, "user")
    user = User(name=name, role=role, vendor_id=_vendor_id(session, vendor) if vendor else None)
    session.add(user)
    session.flush()
    events.record(
        session, "user.created", "user", name, actor=actor, details={"role": role, "vendor": vendor}
    )
    return user


def get_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise UserNotFound(f"no user {name!r} (see `dataops users list`)")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def describe_user(session: Session, user: User) -> UserOut:
    vendor = (
        None
        if user.vendor_id is None
        else session.scalar(select(Vendor.name).where(Vendor.id == user.vendor_id))
    )
    return UserOut(
        id=user.id,
        name=user.name,
        role=user.role,
        vendor=vendor,
        disabled=user.disabled,
        created_at=as_utc(user.created_at),
    )


@dataclass(frozen=True)
class NewToken:
    row: ApiToken
    token: str


def create_token(
    session: Session,
    user_name: str,
    *,
    expires_in: timedelta | None,
    name: str | None = None,
    actor: str | None,
) -> NewToken:
    """The plain token exists only in the returned value; show it once and drop it."""
    user = get_user(session, user_name)
    prefix = secrets.token_hex(_PREFIX_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    salt = secrets.token_hex(16)
    expires_at = None if expires_in is None else utcnow() + expires_in
    row = ApiToken(
        user_id=user.id,
        prefix=prefix,
        salt=salt,
        secret_hash=_digest(salt, secret),
        name=name,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    events.record(
        session,
        "token.created",
        "api_token",
        prefix,
        actor=actor,
        details={
            "user": user.name,
            "name": name,
            "expires_at": None if expires_at is None else expires_at.isoformat(),
        },
    )
    return NewToken(row=row, token=f"{TOKEN_SCHEME}_{prefix}_{secret}")


def normalise_prefix(text: str) -> str:
    """Accept ``3f9a0c1b7d2e`` or ``dok_3f9a0c1b7d2e``; never a whole token (it would be logged)."""
    prefix = text.strip().removeprefix(f"{TOKEN_SCHEME}_")
    if not _PREFIX_RE.match(prefix):
        raise TokenNotFound("no such token (give the 12-character prefix shown by `tokens list`)")
    return prefix


def get_token(session: Session, prefix: str, *, owner_id: int | None = None) -> ApiToken:
    """A token by prefix; with `owner_id`, someone else's token is reported as missing."""
    stmt = select(ApiToken).where(ApiToken.prefix == normalise_prefix(prefix))
    if owner_id is not None:
        stmt = stmt.where(ApiToken.user_id == owner_id)
    row = session.scalar(stmt)
    if row is None:
        raise TokenNotFound("no such token (see `dataops tokens list`)")
    return row


def list_tokens(session: Session, *, user_id: int | None = None) -> list[ApiToken]:
    stmt = select(ApiToken).order_by(ApiToken.id)
    if user_id is not None:
        stmt = stmt.where(ApiToken.user_id == user_id)
    return list(session.scalars(stmt))


def revoke_token(
    session: Session, prefix: str, *, actor: str | None, owner_id: int | None = None
) -> ApiToken:
    """Idempotent: revoking a revoked token changes nothing and records nothing."""
    row = get_token(session, prefix, owner_id=owner_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
        events.record(session, "token.revoked", "api_token", row.prefix, actor=actor)
    return row


def describe_token(session: Session, row: ApiToken) -> TokenOut:
    user = session.scalar(select(User.name).where(User.id == row.user_id))
    return TokenOut(
        prefix=row.prefix,
        user=user or "",
        name=row.name,
        created_at=as_utc(row.created_at),
        expires_at=as_utc_or_none(row.expires_at),
        last_used_at=as_utc_or_none(row.last_used_at),
        revoked_at=as_utc_or_none(row.revoked_at),
    )


def authenticate(session: Session, token: str, *, now: datetime | None = None) -> User:
    """The enabled user a live token belongs to; every failure looks the same to the caller."""
    match = _TOKEN_RE.match(token)
    if not match:
        raise Unauthenticated(_INVALID)
    prefix, secret = match.groups()
    row = session.scalar(select(ApiToken).where(ApiToken.prefix == prefix))
    if row is None or not hmac.compare_digest(_digest(row.salt, secret), row.secret_hash):
        raise Unauthenticated(_INVALID)
    now = now or utcnow()
    expires_at = as_utc_or_none(row.expires_at)
    if row.revoked_at is not None or (expires_at is not None and expires_at <= now):
        raise Unauthenticated(_INVALID)
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        raise Unauthenticated(_INVALID)
    last_used = as_utc_or_none(row.last_used_at)
    if last_used is None or now - last_used >= _LAST_USED_RESOLUTION:
        row.last_used_at = now
        session.flush()
    return user
