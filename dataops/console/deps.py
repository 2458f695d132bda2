"""What every console page depends on: the signed-in user, their role, the CSRF check and
their vendor scope. The same rules as the API (``dataops.api.deps``), spoken to a browser:

- ``ConsoleUser``: the signed-in user; without a live session the browser is redirected
  (303) to ``/console/sign-in?next=<this page>``.
- ``console_roles(*roles)``: admins and the listed roles; anyone else gets a 403 page.
  ``console_roles(*STAFF)`` is every role but vendor.
- ``CsrfForm``: the posted form, after checking its hidden ``csrf_token`` (and the Origin
  header, when the browser sends one); a missing or wrong token is a 403 page and nothing
  runs. Every POST route takes it.
- ``ConsoleVendorScope``: ``VendorScope`` for the signed-in user; other vendors' ids answer
  the same 404 page as ids that do not exist.
- The transaction is ``dataops.api.deps.SessionDep``: it commits after the page returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData

from dataops.api.deps import STAFF, SessionDep, VendorScope
from dataops.auth.errors import PermissionDenied
from dataops.auth.models import User
from dataops.config import get_settings
from dataops.console import sessions
from dataops.console.errors import CsrfRefused, SignInRequired

__all__ = [
    "STAFF",
    "ActiveSessionDep",
    "ConsoleUser",
    "ConsoleVendorScope",
    "CsrfForm",
    "SessionDep",
    "console_roles",
    "console_user",
    "verify_csrf",
]


def _here(request: Request) -> str:
    if request.method != "GET":
        return "/console/"
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def console_session(request: Request, session: SessionDep) -> sessions.ActiveSession:
    active = sessions.resume(
        session, request.cookies.get(sessions.COOKIE_NAME), settings=get_settings().console
    )
    if active is None:
        raise SignInRequired(_here(request))
    request.state.console = active
    request.state.console_viewer = active.viewer
    return active


ActiveSessionDep = Annotated[sessions.ActiveSession, Depends(console_session)]


def console_user(active: ActiveSessionDep) -> User:
    return active.user


ConsoleUser = Annotated[User, Depends(console_user)]


def console_roles(*roles: str) -> Callable[[User], User]:
    """A dependency that lets through admins and the listed roles (403 page for others)."""
    allowed = frozenset(roles) | {"admin"}

    def dependency(user: ConsoleUser) -> User:
        if user.role not in allowed:
            raise PermissionDenied(f"The {user.role} role may not see this page.")
        return user

    return dependency


def same_origin(request: Request) -> bool:
    """Browsers send Origin on POST; when they do it must be this server."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = f"{request.url.scheme}://{request.url.netloc}"
    return origin == own


async def verify_csrf(request: Request, active: ActiveSessionDep) -> FormData:
    form = await request.form()
    token = form.get("csrf_token")
    if not same_origin(request) or not sessions.csrf_matches(
        active, token if isinstance(token, str) else None
    ):
        raise CsrfRefused(
            "This form was not sent from a current page of this console (its security token "
            "is missing or out of date). Reload the page and try again; nothing was changed."
        )
    return form


CsrfForm = Annotated[FormData, Depends(verify_csrf)]


def console_vendor_scope(user: ConsoleUser) -> VendorScope:
    if user.role != "vendor":
        return VendorScope(vendor_id=None)
    if user.vendor_id is None:
        raise PermissionDenied("This vendor account is not attached to a vendor.")
    return VendorScope(vendor_id=user.vendor_id)


ConsoleVendorScope = Annotated[VendorScope, Depends(console_vendor_scope)]
