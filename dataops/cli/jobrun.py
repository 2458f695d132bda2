"""Run a job from the CLI: in-process with a progress bar, or on a worker while we wait."""

from __future__ import annotations

from typing import Any

from dataops.cli.output import progress_bar


def run_job(kind: str, params: dict[str, Any], *, description: str, wait: bool = True) -> Any:
    from dataops.config import get_settings
    from dataops.errors import DataopsError
    from dataops.jobs import runner
    from dataops.jobs.models import FAILED
    from dataops.migrate import ensure_ready

    ensure_ready()
    with progress_bar(description) as on_progress:
        job = runner.submit(kind, params, actor=_actor(), on_progress=on_progress)
        if get_settings().broker_url and wait:
            job = runner.wait(job.id, on_progress=on_progress)
    if job.status == FAILED:
        raise DataopsError(f"job {job.id} ({kind}) failed: {job.error}")
    return job


def _actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"
