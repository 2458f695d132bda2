"""Turn expected failures into one clear line; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import re

from dataops.cli.output import err_console

EXIT_USER_ERROR = 2
EXIT_UNAVAILABLE = 3


def _redact(text: str) -> str:
    return re.sub(r"(://[^:/@\s]+):[^@\s]+@", r"\1:***@", text)


def handle(exc: BaseException) -> int:
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

    from dataops.errors import DataopsError, ServiceUnavailable

    if isinstance(exc, DataopsError):
        err_console.print(f"[red]error:[/red] {_redact(str(exc))}", highlight=False)
        return EXIT_UNAVAILABLE if isinstance(exc, ServiceUnavailable) else EXIT_USER_ERROR
    if isinstance(exc, ArgumentError | NoSuchModuleError):
        err_console.print(
            f"[red]error:[/red] DATAOPS_DATABASE_URL is not a usable database URL: {_redact(str(exc))}",
            highlight=False,
        )
        return EXIT_USER_ERROR
    if isinstance(exc, OperationalError):
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        err_console.print(
            f"[red]error:[/red] cannot use the catalog database: {_redact(first)} "
            "(check DATAOPS_DATABASE_URL, then run `dataops init`)",
            highlight=False,
        )
        return EXIT_UNAVAILABLE
    if isinstance(exc, KeyboardInterrupt):
        err_console.print(
            "interrupted: finished batches are saved; run the command again to resume"
        )
        return 130
    raise exc
