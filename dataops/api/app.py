"""The FastAPI application: routers from every domain, one error shape, auth in dependencies.

Adding a domain's routes (the pattern every router follows)
-----------------------------------------------------------
1. Write ``dataops/<domain>/router.py`` with ``router = APIRouter(prefix="/v1",
   tags=["<domain>"])``. Routes stay thin: check input, call the domain's service, return
   a pydantic model from ``<domain>/schemas.py``.
2. Every route declares who may call it, server-side, as a parameter::

       user: Annotated[User, Depends(require_roles("labeling_ops"))]   # admin always passes

   ``require_roles()`` alone means admins only; ``STAFF`` is every role except vendor.
   Data a vendor may see goes through ``scope: VendorScopeDep`` and
   ``scope.check_queue(session, queue_id)`` / ``scope.check_image(session, image_id)``,
   which answer 404 for other vendors' ids.
3. Take ``session: SessionDep``. The dependency commits after the route returns and rolls
   back when it raises; services only flush. Writes pass ``actor=actor(user)`` to the
   service so the audit event names ``user:<name>``.
4. Long work answers 202 with ``accept_job(session, background, kind, params,
   actor=actor(user))`` from ``dataops.jobs.router`` (response model ``JobAccepted`` from
   ``dataops.jobs.schemas``): the job row commits with the request, then a worker (or this
   process) runs it.
5. Raise ``DataopsError`` subclasses for anything the caller got wrong; they become
   ``{"error": {"code", "message"}}`` with their status. Document each route with
   ``summary``, ``description``, ``response_model`` and ``responses=error_responses(...)``
   plus an example.
6. Append the router to ``ROUTERS`` in ``dataops/api/routes.py`` and one row per route to
   ``MATRIX`` in ``tests/security/test_authz_matrix.py``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from dataops.api import errors
from dataops.api.signing import RedactSignatures
from dataops.config import ApiSettings, get_settings

DESCRIPTION = """\
Labeling and active-learning data operations: the image catalog, jobs, and signed image URLs
for Label Studio.

Authenticate with `Authorization: Bearer <token>` (create one with
`dataops tokens create USER`). Roles: `admin`, `scientist`, `labeling_ops`, `vendor`,
`auditor`. Errors are always `{"error": {"code": ..., "message": ...}}`. Long work answers
`202 {"job_id": ...}`; poll `GET /v1/jobs/{job_id}`.
"""


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    from dataops.migrate import ensure_ready

    # No catalog, no server: a missing one is refused, an embedded one at an older schema upgrades.
    await run_in_threadpool(ensure_ready)
    yield


def _redact_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSignatures) for f in access.filters):
        access.addFilter(RedactSignatures())


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    from dataops.api.routes import ROUTERS, TAGS
    from dataops.console import router as console

    settings = settings or get_settings().api
    app = FastAPI(
        title="dataops",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=_lifespan,
    )
    errors.install(app, max_body_bytes=settings.max_body_bytes)
    for router in ROUTERS:
        app.include_router(router)
    console.install(app)
    _redact_access_log()
    return app
