"""What every route depends on: a transaction, the caller, their role and their vendor scope.

- ``SessionDep``: one session per request, committed when the route returns and rolled back
  when it raises, before the response is sent (so a client never reads a 2xx for a change
  that did not commit). Services only flush.
- ``require_roles(...)``: the authenticated user, or 403 unless their role is listed.
  ``admin`` is always allowed; ``require_roles()`` alone means admins only. Use it as a
  route parameter:
  ``user: Annotated[User, Depends(require_roles("labeling_ops"))]``.
- ``actor(user)``: the ``user:<name>`` string every write passes to the events log.
- ``VendorScope``: vendors see only their own queues and the images in those queues' batches;
  anything else answers 404, exactly like an id that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import Depends, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.api.admission import session_slot
from dataops.auth import service as auth_service
from dataops.auth.errors import PermissionDenied, Unauthenticated
from dataops.auth.models import User
from dataops.config import ApiSettings, get_settings
from dataops.errors import NotFound

STAFF = ("admin", "scientist", "labeling_ops", "auditor")


def api_settings() -> ApiSettings:
    return get_settings().api


async def get_session() -> AsyncIterator[Session]:
    """One unit of work per request; it commits before the response is sent.

    The request first waits for a session slot in the event loop (``dataops.api.admission``),
    so that threads never queue for the pool behind requests that wait for threads.
    """
    from dataops.db import session_factory

    async with session_slot():
        session = await run_in_threadpool(session_factory())
        try:
            yield session
            await run_in_threadpool(session.commit)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(session.rollback)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(session.close)


SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(
    auto_error=False,
    description="An API token from `dataops tokens create USER`: `Authorization: Bearer dok_...`.",
)


def current_user(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> User:
    if credentials is None:
        raise Unauthenticated("missing bearer token (Authorization: Bearer dok_...)")
    return auth_service.authenticate(session, credentials.credentials)


CurrentUser = Annotated[User, Depends(current_user)]


def require_roles(*roles: str) -> Callable[[User], User]:
    """A dependency that lets through admins and the listed roles."""
    allowed = frozenset(roles) | {"admin"}

    def dependency(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise PermissionDenied(f"the {user.role} role may not do this")
        return user

    return dependency


def actor(user: User) -> str:
    return f"user:{user.name}"


@dataclass(frozen=True)
class VendorScope:
    """``vendor_id`` is None for staff (no restriction) and the user's vendor for vendors."""

    vendor_id: int | None

    def check_queue(self, session: Session, queue_id: int) -> None:
        from dataops.labeling.models import Queue

        if self.vendor_id is None:
            return
        owner = session.scalar(select(Queue.vendor_id).where(Queue.id == queue_id))
        if owner != self.vendor_id:
            raise NotFound(f"no queue {queue_id}")

    def check_image(self, session: Session, image_id: int) -> None:
        """Vendors may see an image only while it is in a batch of one of their queues."""
        from dataops.labeling.models import Queue
        from dataops.selection.models import Batch, BatchItem

        if self.vendor_id is None:
            return
        visible = session.scalar(
            select(BatchItem.id)
            .join(Batch, Batch.id == BatchItem.batch_id)
            .join(Queue, Queue.id == Batch.queue_id)
            .where(BatchItem.image_id == image_id, Queue.vendor_id == self.vendor_id)
            .limit(1)
        )
        if visible is None:
            raise NotFound(f"no image {image_id}")


def vendor_scope(user: CurrentUser) -> VendorScope:
    if user.role != "vendor":
        return VendorScope(vendor_id=None)
    if user.vendor_id is None:
        raise PermissionDenied("this vendor account is not attached to a vendor")
    return VendorScope(vendor_id=user.vendor_id)


VendorScopeDep = Annotated[VendorScope, Depends(vendor_scope)]
