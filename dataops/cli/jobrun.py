"""Run a job from the CLI: in-process with a progress bar, or on a worker while we wait.

With a broker, the CLI never waits on a queue nobody consumes: right after submitting (and
again while the job is still queued) it asks the running workers which queues they consume,
and when none consumes the job's queue it says which `dataops worker -Q ...` to start and
exits 3 (a service is down). The job stays queued and runs once such a worker starts.
"""

from __future__ import annotations

import time
from typing import Any

from dataops.cli.output import err_console, progress_bar
from dataops.errors import ServiceUnavailable

# Seconds the workers get to answer "which queues do you consume?": a second, longer round
# before concluding nobody does, so a worker slow to answer on a loaded machine still counts
# (about 4 s in all when no worker answers).
ANSWER_ROUNDS = (1.5, 2.5)
# While a job is still queued, the workers are asked again this often.
RECHECK_EVERY = 30.0


class NoWorker(ServiceUnavailable):
    """No running worker consumes the queue a job was sent to."""

    code = "no_worker"


def run_job(kind: str, params: dict[str, Any], *, description: str, wait: bool = True) -> Any:
    from dataops.config import get_settings
    from dataops.jobs import dispatch
    from dataops.migrate import ensure_ready

    ensure_ready(create=kind == "ingest")  # only ingest may start a new catalog
    broker = get_settings().broker_url
    with progress_bar(description) as on_progress:
        job = dispatch.submit(kind, params, actor=_actor(), on_progress=on_progress)
        if broker:
            missing = _unconsumed(kind, job.id)
            if missing and not wait:
                err_console.print(f"[yellow]warning:[/yellow] {missing}", highlight=False)
            elif missing:
                raise NoWorker(missing)
            elif wait:
                job = _wait(kind, job.id, on_progress)
    raise_if_failed(job, kind)
    return job


def _wait(kind: str, job_id: str, on_progress: Any) -> Any:
    """Poll until the job finishes, asking the workers again while it is still queued."""
    from dataops.jobs import runner
    from dataops.jobs.models import FAILED, PENDING, SUCCEEDED

    while True:
        job = runner.wait(job_id, timeout=RECHECK_EVERY, on_progress=on_progress)
        if job.status in (SUCCEEDED, FAILED):
            return job
        if job.status == PENDING:
            missing = _unconsumed(kind, job_id)
            if missing:
                raise NoWorker(missing)


def _unconsumed(kind: str, job_id: str) -> str | None:
    """Why the job would wait forever, with the command that fixes it; None when a worker is on it."""
    from dataops.jobs import dispatch
    from dataops.jobs.errors import BrokerUnavailable
    from dataops.jobs.registry import QUEUES

    queue = QUEUES[kind]
    started = time.monotonic()
    consumers: dict[str, list[str]] = {}
    for timeout in ANSWER_ROUNDS:
        try:
            consumers = dispatch.queue_consumers(timeout=timeout)
        except Exception as exc:  # kombu raises transport-specific errors
            raise BrokerUnavailable(f"cannot ask the workers through the broker: {exc}") from exc
        if consumers.get(queue):
            return None
    others = ", ".join(f"{q} ({len(w)})" for q, w in sorted(consumers.items())) or "none"
    return (
        f"no running worker consumes the `{queue}` queue (asked the workers for "
        f"{time.monotonic() - started:.1f}s; queues with workers: {others}), so job {job_id} "
        f"({kind}) waits until one starts: run `dataops worker -Q {queue}` with the same "
        f"DATAOPS_DATABASE_URL and DATAOPS_BROKER_URL, then `dataops jobs show {job_id}`"
    )


def raise_if_failed(job: Any, kind: str) -> None:
    """A job that failed on a worker exits like the same error raised here would."""
    from dataops.cli.errors import job_error
    from dataops.errors import DataopsError
    from dataops.jobs.models import FAILED

    if job.status != FAILED:
        return
    message = f"job {job.id} ({kind}) failed: {job_error(job.error, job.result)}"
    failure = (job.result or {}).get("error") or {}
    if failure.get("status") == ServiceUnavailable.status_code:
        raise ServiceUnavailable(message)
    raise DataopsError(message)


def _actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"
