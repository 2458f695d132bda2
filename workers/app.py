"""The Celery app. Start with `dataops worker -Q ...` or `celery -A workers.app worker -Q ...`."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import celeryd_after_setup, worker_process_init, worker_ready
from kombu.entity import Queue

from dataops.config import get_settings
from dataops.jobs.registry import QUEUES

settings = get_settings()

app = Celery("dataops", broker=settings.broker_url or "redis://127.0.0.1:6379/0")
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_acks_on_failure_or_timeout=True,
    worker_prefetch_multiplier=1,
    task_soft_time_limit=settings.worker.soft_time_limit,
    task_time_limit=settings.worker.time_limit,
    task_ignore_result=True,
    task_queues=[Queue(name) for name in sorted(set(QUEUES.values()) | {"maintenance"})],
    task_default_queue="maintenance",
    task_routes={f"dataops.{kind}.run": {"queue": queue} for kind, queue in QUEUES.items()},
    broker_transport_options={"visibility_timeout": settings.worker.visibility_timeout},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    beat_schedule={
        # Cheap (one indexed query): a job whose worker died is re-sent within one lease
        # plus one sweep, not after the broker's visibility timeout.
        "recover-stale-jobs": {
            "task": "dataops.jobs.recover",
            "schedule": settings.worker.recover_every,
        },
        "labelstudio-poll": {"task": "dataops.sync.poll", "schedule": 120.0},
    },
)
app.autodiscover_tasks(["workers"], related_name="tasks", force=True)


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    """Forked children must not reuse the parent's database sockets."""
    from dataops.db import dispose_engines

    dispose_engines()


@celeryd_after_setup.connect
def _take_maintenance(instance: Any, **_: Any) -> None:
    """Every worker also takes the small periodic tasks (recovery sweep, Label Studio poll):
    beat sends them to `maintenance`, whatever queues the worker was started with."""
    instance.app.amqp.queues.select_add("maintenance")


@worker_ready.connect
def _recover_on_start(**_: Any) -> None:
    """A worker that (re)starts picks up jobs whose worker died, without waiting for beat."""
    from dataops.jobs.recovery import recover_stale

    try:
        recovered = recover_stale()
    except Exception as exc:  # a worker must start even while the catalog is briefly away
        logging.getLogger(__name__).warning("could not recover stale jobs at start: %s", exc)
        return
    if recovered:
        logging.getLogger(__name__).warning("re-sent stale jobs: %s", ", ".join(recovered))
