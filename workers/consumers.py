"""Which queues the running workers consume, asked of the workers themselves over the broker.

A job sent to a queue nobody consumes waits forever; the CLI asks right after submitting, so
it can say which `dataops worker -Q ...` to start instead of showing a bar that never moves.
"""

from __future__ import annotations


def queue_consumers(broker_url: str, timeout: float = 1.5) -> dict[str, list[str]]:
    """Queue name -> names of the running workers subscribed to it.

    Every worker answering within ``timeout`` seconds counts (a worker answers from its main
    process, also while its pool runs tasks). Raises when the broker cannot be reached.
    """
    from workers.app import app

    found: dict[str, set[str]] = {}
    with app.connection_for_write(broker_url) as connection:
        replies = app.control.inspect(timeout=timeout, connection=connection).active_queues()
    for worker, queues in (replies or {}).items():
        for queue in queues or []:
            found.setdefault(str(queue.get("name")), set()).add(worker)
    return {queue: sorted(workers) for queue, workers in found.items()}
