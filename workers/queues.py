"""What the broker still holds: job messages waiting in a Redis queue (kombu's layout)."""

from __future__ import annotations

import base64
import json
from typing import Any

from dataops.jobs.registry import QUEUES

# kombu's Redis transport keeps one list per queue and priority step: "<queue>" for the
# default step and "<queue>\x06\x16<step>" for the others.
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)


def queued_job_ids(broker_url: str) -> set[str] | None:
    """Ids of jobs whose task message waits in a queue; None for brokers other than Redis."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return None
    import redis

    client = redis.Redis.from_url(broker_url, socket_timeout=10)
    found: set[str] = set()
    for queue in sorted(set(QUEUES.values())):
        for key in [queue, *(f"{queue}{_PRIORITY_SEP}{step}" for step in _PRIORITY_STEPS)]:
            for raw in client.lrange(key, 0, -1):
                job_id = _job_id(raw)
                if job_id:
                    found.add(job_id)
    return found


def _job_id(raw: bytes | str) -> str | None:
    """The job id argument of a `dataops.<kind>.run` message, or None for any other message."""
    try:
        message: dict[str, Any] = json.loads(raw)
        headers = message.get("headers") or {}
        if not str(headers.get("task", "")).endswith(".run"):
            return None
        body = message["body"]
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return str(args[0]) if args else None
