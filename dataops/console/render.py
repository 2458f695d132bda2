"""HTML for console pages: one Jinja2 environment (autoescaped) over ``templates/``, and the
navigation, kept in one list (``NAV``) so each page group adds its own line.

``render()`` adds to every template's context: ``user`` (or None), ``csrf_token`` (put it in
every POST form as ``<input type="hidden" name="csrf_token" value="{{ csrf_token }}">``),
``nav`` (the entries this role may see, with ``current`` set) and ``path``. A nav entry shows
only once a GET route serves its path, so an entry can be listed before its page exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from dataops.auth.models import ROLES, User
from dataops.console.sessions import Viewer

TEMPLATES = Path(__file__).parent / "templates"
STAFF = tuple(role for role in ROLES if role != "vendor")
EVERYONE = ROLES


@dataclass(frozen=True)
class NavEntry:
    label: str
    path: str
    roles: tuple[str, ...]  # admin always sees every entry


NAV: list[NavEntry] = [
    NavEntry("Overview", "/console/", EVERYONE),
    NavEntry("Queues", "/console/queues", EVERYONE),
    NavEntry("Requests", "/console/requests", ("scientist", "labeling_ops")),
    NavEntry("Annotators", "/console/annotators", STAFF),
    NavEntry("Vendors", "/console/vendors", STAFF),
    NavEntry("Audits", "/console/audits", STAFF),
    NavEntry("Duplicates", "/console/duplicates", STAFF),
    NavEntry("Manifests", "/console/manifests", STAFF),
    NavEntry("Jobs", "/console/jobs", STAFF),
]


@dataclass(frozen=True)
class NavLink:
    label: str
    path: str
    current: bool


def _served_paths(request: Request) -> frozenset[str]:
    paths = getattr(request.app.state, "console_paths", None)
    return paths if isinstance(paths, frozenset) else frozenset()


def nav_for(request: Request, user: User | Viewer | None) -> list[NavLink]:
    if user is None:
        return []
    served = _served_paths(request)
    here = request.url.path
    links = []
    for entry in NAV:
        if entry.path not in served or (user.role != "admin" and user.role not in entry.roles):
            continue
        current = here == entry.path or (
            entry.path != "/console/" and here.startswith(entry.path.rstrip("/") + "/")
        )
        links.append(NavLink(entry.label, entry.path, current))
    return links


def _when(value: datetime | None) -> str:
    """UTC, to the minute: the console's one way of showing a time."""
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _count(value: int | float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def _percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f} %"


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["count"] = _count
    env.filters["percent"] = _percent
    return env


def render(
    request: Request,
    template_name: str,
    context: Mapping[str, Any],
    *,
    user: User | Viewer | None,
    status_code: int = 200,
) -> HTMLResponse:
    active = getattr(request.state, "console", None)
    full = {
        **context,
        "user": user,
        "csrf_token": "" if active is None else active.csrf_token,
        "nav": nav_for(request, user),
        "path": request.url.path,
    }
    html = environment().get_template(template_name).render(full)
    return HTMLResponse(html, status_code=status_code)
