"""The broker as the rest of dataops sees it: send a message, check the broker is there, ask
what it holds and who consumes it. `dataops.jobs.dispatch` loads this module by its import
string, so Celery and kombu stay inside `workers/`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def send(task_name: str, args: Sequence[Any], queue: str) -> None:
    """Put one task message on a queue (kombu's OperationalError when the broker is away)."""
    from workers.app import app

    app.send_task(task_name, args=list(args), queue=queue)


def check(url: str) -> None:
    """Fail fast with one clear line instead of queueing into the void."""
    from kombu.connection import Connection

    from dataops.jobs.errors import BrokerUnavailable

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:  # kombu raises transport-specific errors
        raise BrokerUnavailable(f"cannot reach the broker at {redact(url)}: {exc}") from exc


def is_broker_error(exc: BaseException) -> bool:
    """Whether an exception means the broker connection failed (kombu's own error class)."""
    from kombu.exceptions import OperationalError

    return isinstance(exc, OperationalError)


def queued_job_ids(url: str) -> set[str] | None:
    from workers.queues import queued_job_ids as read_queues

    return read_queues(url)


def queue_lengths(url: str, timeout: float = 2.0) -> dict[str, int] | None:
    from workers.queues import queue_lengths as read_lengths

    return read_lengths(url, timeout=timeout)


def queue_consumers(url: str, timeout: float = 1.5) -> dict[str, list[str]]:
    from workers.consumers import queue_consumers as ask_workers

    return ask_workers(url, timeout=timeout)


def redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]
