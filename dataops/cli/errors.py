"""Turn expected failures into one clear line; anything else is a bug and keeps its traceback.

Exit codes (the README's table): 0 done; 1 a check found problems (`manifest verify|diff`,
`dedup leaks`); 2 bad input or configuration (no catalog where the command looked
included, and Typer's own usage errors); 3 a service is down (database, broker, blob store,
Label Studio, or no worker consumes the job's queue), also when that happened on a worker;
130 interrupted.
"""

from __future__ import annotations

import re
from typing import Any

from rich.markup import escape

from dataops.cli.output import err_console

EXIT_PROBLEMS = 1
EXIT_USER_ERROR = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130


def _redact(text: str) -> str:
    return re.sub(r"(://[^:/@\s]+):[^@\s]+@", r"\1:***@", text)


# Request fields whose CLI flag is not simply ``--`` + the field name in kebab case.
FLAG_NAMES: dict[str, str] = {
    "attributes_csv": "--attributes",
    "batch_id": "BATCH_ID",
    "copy_bytes": "--copy",
    "input_spec": "--input-size (and --mean, --std, --channels)",
    "paths": "PATHS",
    "resamples": "--bootstrap",
}


def flag_for(field: str) -> str:
    """How the CLI spells a request field in an error message."""
    return FLAG_NAMES.get(field, "--" + field.replace("_", "-"))


def job_error(error: str | None, result: dict[str, Any] | None) -> str | None:
    """A failed job's error with its fields spelled as this CLI's flags.

    The job row's ``error`` spells them as the API does; ``result["error"]`` keeps the
    message template and its fields (``DataopsError.as_record``) for this.
    """
    from dataops.errors import DataopsError

    record = (result or {}).get("error")
    if not isinstance(record, dict):
        return error
    template, fields = record.get("template"), record.get("fields")
    if not isinstance(template, str) or not isinstance(fields, list) or not fields:
        return error
    if not all(isinstance(name, str) for name in fields):
        return error
    return DataopsError(template, fields=tuple(fields)).render(flag_for)


def handle(exc: BaseException) -> int:
    from sqlalchemy.exc import ArgumentError, InterfaceError, NoSuchModuleError, OperationalError

    from dataops.errors import DataopsError, ServiceUnavailable
    from dataops.jobs.dispatch import is_broker_error

    if isinstance(exc, DataopsError):
        message = escape(_redact(exc.render(flag_for)))  # a message is text, never Rich markup
        err_console.print(f"[red]error:[/red] {message}", highlight=False)
        return EXIT_UNAVAILABLE if isinstance(exc, ServiceUnavailable) else EXIT_USER_ERROR
    if isinstance(exc, ArgumentError | NoSuchModuleError):
        err_console.print(
            f"[red]error:[/red] DATAOPS_DATABASE_URL is not a usable database URL: {_redact(str(exc))}",
            highlight=False,
        )
        return EXIT_USER_ERROR
    if is_broker_error(exc):
        err_console.print(
            f"[red]error:[/red] lost the broker: {_redact(str(exc))} (check DATAOPS_BROKER_URL)",
            highlight=False,
        )
        return EXIT_UNAVAILABLE
    if isinstance(exc, OperationalError | InterfaceError):
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        err_console.print(
            f"[red]error:[/red] cannot use the catalog database: {_redact(first)} "
            "(is the database running? check DATAOPS_DATABASE_URL)",
            highlight=False,
        )
        return EXIT_UNAVAILABLE
    if isinstance(exc, KeyboardInterrupt):
        err_console.print(
            "interrupted: finished batches are saved; run the command again to resume"
        )
        return EXIT_INTERRUPTED
    raise exc
