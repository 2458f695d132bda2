"""Operational endpoints: ``/metrics`` in the Prometheus text format and ``/healthz``.

Metrics are computed from the catalog at scrape time (no in-process counters), so every API
replica reports the same numbers and a restart loses nothing:

- ``dataops_jobs{kind,status}``: jobs by state;
- ``dataops_jobs_finished_total{kind,status}``: finished jobs, for ``rate()``;
- ``dataops_jobs_finished_last_hour{kind,status}``: the same over the last hour, for people
  reading the page without Prometheus;
- ``dataops_images{status}``: catalog size;
- ``dataops_broker_up`` and ``dataops_queue_length{queue}``: Celery backlog per queue
  (Redis ``LLEN``), when a Redis broker is configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from dataops.api.deps import STAFF, SessionDep, require_roles
from dataops.api.errors import error_responses
from dataops.auth.models import User
from dataops.jobs import dispatch

router = APIRouter(tags=["operations"])

_FINISHED = ("succeeded", "failed")
_BROKER_TIMEOUT = 2.0


class CatalogCollector:
    """A prometheus_client collector reading one session at scrape time."""

    def __init__(self, session: Session, broker_url: str | None) -> None:
        self.session = session
        self.broker_url = broker_url

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from dataops.catalog.models import Image
        from dataops.db import utcnow
        from dataops.jobs.models import Job

        jobs = GaugeMetricFamily(
            "dataops_jobs", "Jobs by kind and status.", labels=["kind", "status"]
        )
        finished = CounterMetricFamily(
            "dataops_jobs_finished", "Finished jobs by kind and outcome.", labels=["kind", "status"]
        )
        for kind, status, count in self.session.execute(
            select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)
        ):
            jobs.add_metric([kind, status], count)
            if status in _FINISHED:
                finished.add_metric([kind, status], count)
        yield jobs
        yield finished

        recent = GaugeMetricFamily(
            "dataops_jobs_finished_last_hour",
            "Jobs finished in the last hour by kind and outcome.",
            labels=["kind", "status"],
        )
        since = utcnow() - timedelta(hours=1)
        for kind, status, count in self.session.execute(
            select(Job.kind, Job.status, func.count())
            .where(Job.status.in_(_FINISHED), Job.finished_at >= since)
            .group_by(Job.kind, Job.status)
        ):
            recent.add_metric([kind, status], count)
        yield recent

        images = GaugeMetricFamily("dataops_images", "Catalog images by status.", labels=["status"])
        for status, count in self.session.execute(
            select(Image.status, func.count()).group_by(Image.status)
        ):
            images.add_metric([status], count)
        yield images

        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            lengths = dispatch.queue_lengths(timeout=_BROKER_TIMEOUT)
            yield GaugeMetricFamily(
                "dataops_broker_up", "1 when the broker answered.", value=int(lengths is not None)
            )
            queues = GaugeMetricFamily(
                "dataops_queue_length", "Messages waiting per Celery queue.", labels=["queue"]
            )
            for name, length in (lengths or {}).items():
                queues.add_metric([name], length)
            yield queues


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    description=(
        "Job counts by kind and status, finished-job counters for rates, catalog size and "
        "Celery queue depth. Scrape with a bearer token of any non-vendor role."
    ),
    responses={
        **error_responses(401, 403),
        200: {
            "content": {
                "text/plain": {"example": 'dataops_jobs{kind="ingest",status="succeeded"} 12.0\n'}
            }
        },
    },
)
def metrics(
    session: SessionDep, _user: Annotated[User, Depends(require_roles(*STAFF))]
) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    from dataops.config import get_settings

    registry = CollectorRegistry(auto_describe=False)
    registry.register(CatalogCollector(session, get_settings().broker_url))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/healthz",
    summary="Health check",
    description="200 when the API can reach the catalog database; no token needed.",
    responses={
        **error_responses(503),
        200: {"content": {"application/json": {"example": {"status": "ok"}}}},
    },
)
def healthz(session: SessionDep) -> dict[str, str]:
    session.execute(text("SELECT 1"))
    return {"status": "ok"}
