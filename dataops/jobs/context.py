"""What a job handler gets: its id, params, unit of work, counters and progress reporter."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from dataops.db import session_scope
from dataops.jobs import service

ProgressCallback = Callable[[int, int, str], None]


@dataclass
class JobContext:
    """What a job handler gets: its id, params, sessions and a progress reporter."""

    job_id: str
    params: dict[str, Any]
    actor: str | None
    on_progress: ProgressCallback | None = None
    owner: str | None = None
    finished: bool = False
    _last_write: float = field(default=0.0, repr=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """The job's unit of work: commits when the block ends, rolls back on an error."""
        with session_scope() as session:
            yield session

    def progress(self, done: int, total: int, message: str = "", *, force: bool = False) -> None:
        """Report progress; the job row is updated at most twice a second."""
        if self.on_progress is not None:
            self.on_progress(done, total, message)
        now = time.monotonic()
        if force or done >= total or now - self._last_write > 0.5:
            self._last_write = now
            with session_scope() as session:
                service.set_progress(session, self.job_id, done, total)

    def count(self, session: Session, counts: dict[str, int]) -> None:
        """Add to the job's counters in the transaction of the work counted, so totals add up
        across attempts; raises LeaseLost (rolling that work back) if another attempt took over."""
        service.add_counters(session, self.job_id, self.owner, counts)

    def finish(self, session: Session, result: dict[str, Any]) -> dict[str, Any]:
        """Record the job's result in the transaction of its work (call it last, just before
        that transaction commits): a worker dying after the commit leaves a finished job, so a
        retry or a racing attempt answers with this result instead of redoing the work. Raises
        LeaseLost, rolling the work back, if another attempt took over or finished first."""
        service.finish_with_work(session, self.job_id, self.owner, result)
        self.finished = True
        return result

    def counters(self) -> dict[str, int]:
        with session_scope() as session:
            return dict(service.get_job(session, self.job_id).counters or {})
