"""What the broker still holds: job messages waiting in a Redis queue, and how many messages
wait per queue (kombu's layout)."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from dataops.jobs.registry import QUEUES

# kombu's Redis transport keeps one list per queue and priority step: "<queue>" for the
# default step and "<queue>\x06\x16<step>" for the others.
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)

log = logging.getLogger(__name__)


def queue_lengths(broker_url: str, timeout: float = 2.0) -> dict[str, int] | None:
    """Messages waiting per queue; None when the broker cannot be asked or is not Redis."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return None
    import redis

    names = sorted(set(QUEUES.values()) | {"maintenance"})
    try:
        client = redis.Redis.from_url(
            broker_url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(name)
            lengths = pipe.execute()
        client.close()
    except redis.RedisError as exc:
        log.warning("cannot read queue lengths from the broker: %s", type(exc).__name__)
        return None
    return {name: int(n) for name, n in zip(names, lengths, strict=True)}


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
