"""The overview's numbers, each one aggregate query, so they cost the same on a big catalog.

- *labeled* counts an image for a task when it holds a label version for the task that is
  not deleted, rejected or released: the rule selection uses to leave it out of new batches
  (``dataops.selection.pool.labeled_images``).
- *duplicate groups* are live groups (not merged into another) with two or more members.

The catalog counts scan the image and label tables (1.8-1.9 s on a million of each,
``benchmarks/console.py``), so a process keeps them for ``COUNTS_MAX_AGE`` seconds per
database and says when they were counted (``counted_at``); jobs and events are read fresh.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dataops.catalog.models import QUARANTINED, Image
from dataops.db import utcnow
from dataops.dedup.models import DupGroup
from dataops.events.models import Event
from dataops.jobs.models import PENDING, RUNNING, Job
from dataops.labeling.models import DELETED, REJECTED, RELEASED, LabelVersion
from dataops.overview.schemas import ActiveJob, CatalogCounts, EventOut, Overview, TaskLabeled

RECENT_EVENTS = 20
ACTIVE_JOBS = 20
COUNTS_MAX_AGE = 60.0

_counted: dict[str, tuple[float, CatalogCounts]] = {}
_counting = threading.Lock()


def catalog_counts(session: Session, *, max_age: float = COUNTS_MAX_AGE) -> CatalogCounts:
    """The counts, at most ``max_age`` seconds old (0: count now)."""
    key = str(session.get_bind().engine.url)
    now = time.monotonic()
    with _counting:
        kept = _counted.get(key)
        if kept is not None and now - kept[0] <= max_age:
            return kept[1]
    counts = count_catalog(session)
    with _counting:
        _counted[key] = (now, counts)
    return counts


def count_catalog(session: Session) -> CatalogCounts:
    by_status = dict(
        session.execute(select(Image.status, func.count()).group_by(Image.status)).all()
    )
    groups = session.scalar(
        select(func.count())
        .select_from(DupGroup)
        .where(DupGroup.merged_into_id.is_(None), DupGroup.size > 1)
    )
    counted = (
        select(LabelVersion.task, LabelVersion.image_id)
        .where(LabelVersion.status.not_in((DELETED, REJECTED, RELEASED)))
        .distinct()
        .subquery()
    )
    labeled = session.execute(
        select(counted.c.task, func.count()).group_by(counted.c.task).order_by(counted.c.task)
    ).all()
    return CatalogCounts(
        images=sum(int(n) for n in by_status.values()),
        quarantined=int(by_status.get(QUARANTINED, 0)),
        duplicate_groups=int(groups or 0),
        labeled=[TaskLabeled(task=task, images=int(n)) for task, n in labeled],
        counted_at=utcnow(),
    )


def active_jobs(session: Session, *, limit: int = ACTIVE_JOBS) -> list[ActiveJob]:
    """Pending and running jobs, newest first, with their progress."""
    rows = session.scalars(
        select(Job)
        .where(Job.status.in_((PENDING, RUNNING)))
        .order_by(Job.created_at.desc(), Job.id)
        .limit(limit)
    )
    return [ActiveJob.model_validate(job) for job in rows]


def recent_events(session: Session, *, limit: int = RECENT_EVENTS) -> list[EventOut]:
    rows = session.scalars(select(Event).order_by(Event.id.desc()).limit(limit))
    return [EventOut.model_validate(event) for event in rows]


def overview(session: Session) -> Overview:
    return Overview(
        catalog=catalog_counts(session), jobs=active_jobs(session), events=recent_events(session)
    )
