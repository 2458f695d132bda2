"""The HTTP API. Serve it with `dataops serve` or `uvicorn dataops.api:app`."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Built on first use, so workers that only sign URLs (dataops.api.signing) never build it.
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from dataops.api.app import create_app

    application = create_app()
    # Importing the submodule bound `app` to it; from now on `app` is the application.
    globals()["app"] = application
    return application
