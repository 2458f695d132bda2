"""The operations console: server-rendered pages under ``/console``, mounted on the API app.

``install(app)`` (called by ``dataops.api.app.create_app``) adds the page router, the static
files at ``/console/static/``, the ``/`` → ``/console/`` redirect, HTML error pages for
console paths and the security headers (CSP without inline scripts or styles).

Adding a page (group ``widgets`` as the example)
------------------------------------------------
1. ``dataops/console/pages/widgets.py`` with ``router = APIRouter()``; every module of
   ``dataops.console.pages`` that has a ``router`` is included here, in name order, under
   the ``/console`` prefix (so ``@router.get("/widgets")`` serves ``/console/widgets``).
2. Routes are thin and sync (``def``): take ``request: Request``, ``session: SessionDep``
   and the user, call the domain's service, and return
   ``render(request, "widgets/index.html", {...}, user=user)``. No SQL and no logic in
   page modules or templates; a new number comes from a domain module that also has a
   JSON ``/v1`` route.
3. Who may see it: ``user: ConsoleUser`` (anyone signed in), or
   ``user: Annotated[User, Depends(console_roles(*STAFF))]`` (``STAFF``: every role but
   vendor; admin always passes). Vendor data goes through ``scope: ConsoleVendorScope``
   and ``scope.check_queue(session, queue_id)``: other vendors' ids are a 404 page.
4. A POST route takes ``form: CsrfForm`` (checked before the route runs; the template puts
   ``<input type="hidden" name="csrf_token" value="{{ csrf_token }}">`` in the form) and
   answers a 303 redirect to a GET page. Raise ``DataopsError`` subclasses as in the API:
   console paths show them as an HTML page with the same status.
5. Template ``dataops/console/templates/widgets/index.html``: ``{% extends "base.html" %}``,
   ``{% block title %}``, ``{% block main %}`` with one ``<h1>``; shared pieces with
   ``{% import "_macros.html" as ui %}`` (``ui.table``, ``ui.pager``, ``ui.badge``,
   ``ui.thumb``). Filters: ``when`` (UTC time), ``count``, ``percent``. No inline
   ``<script>``, ``style=`` or ``on*=`` attributes: the CSP refuses them; behaviour goes in
   ``static/console.js`` (``data-confirm``, ``data-autosubmit``, ``data-refresh``).
6. Nav: one ``NavEntry(label, path, roles)`` line in ``NAV`` in ``dataops/console/render.py``
   (an entry shows once a GET route serves its path, and only to its roles).
7. Browser test ``tests/browser/test_widgets.py`` with the ``console``, ``page``,
   ``sign_in`` and ``axe_violations`` fixtures of ``tests/browser/conftest.py``.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from dataops.console import errors, pages
from dataops.console.headers import ConsoleHeaders

STATIC = Path(__file__).parent / "static"


def _page_routers() -> list[APIRouter]:
    found = []
    for info in sorted(pkgutil.iter_modules(pages.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{pages.__name__}.{info.name}")
        page_router = getattr(module, "router", None)
        if isinstance(page_router, APIRouter):
            found.append(page_router)
    return found


def build_router() -> APIRouter:
    console = APIRouter(prefix="/console", include_in_schema=False)
    for page_router in _page_routers():
        console.include_router(page_router)
    return console


def served_get_paths() -> frozenset[str]:
    """Every console path a GET route serves (the nav shows only these)."""
    return frozenset(
        f"/console{route.path}"
        for page_router in _page_routers()
        for route in page_router.routes
        if isinstance(route, APIRoute) and "GET" in (route.methods or ())
    )


router = build_router()


def _root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=303)


def install(app: FastAPI) -> None:
    """Mount the console on the API app (after the API's error handlers are installed)."""
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.include_router(router)
    app.state.console_paths = served_get_paths()
    app.add_api_route("/", _root, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        "/console", _root, methods=["GET"], include_in_schema=False, name="console-root"
    )
    errors.install(app)
    app.add_middleware(ConsoleHeaders)
