"""Property-based requests from the OpenAPI schema, as an admin: the API never answers 5xx.

The app is built once at import; it reads the catalog from the settings at request time, so
each generated test runs against the parametrised catalog that its fixtures set up. Loading the
schema starts the app, which refuses to start without a catalog: it starts once on a throwaway
one.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from dataops.api.app import create_app
from tests.support.api import bearer


def _load_schema() -> Any:
    from dataops import migrate
    from dataops.config import reset_settings
    from dataops.db import dispose_engines

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("DATAOPS_")}
    with tempfile.TemporaryDirectory() as data_dir:
        os.environ["DATAOPS_DATA_DIR"] = data_dir
        try:
            reset_settings()
            migrate.upgrade()
            return schemathesis.openapi.from_asgi("/openapi.json", create_app())
        finally:
            dispose_engines()
            del os.environ["DATAOPS_DATA_DIR"]
            os.environ.update(saved)
            reset_settings()


schema = _load_schema()


@pytest.fixture
def admin_headers(api_app: FastAPI, make_user: Any) -> dict[str, str]:
    """`api_app` configures the environment (catalog, ingest root) the schema's app reads."""
    return bearer(make_user("admin"))


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case: Any, admin_headers: dict[str, str]) -> None:
    case.call_and_validate(headers=admin_headers, checks=[not_a_server_error])
