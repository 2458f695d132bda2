"""Thin tasks: an explicit name, a job id as the only argument, one service call."""

from __future__ import annotations

from celery import Task

from dataops.jobs.registry import QUEUES, task_name
from workers.app import app


def _job_task(kind: str) -> Task:
    @app.task(name=task_name(kind), queue=QUEUES[kind])
    def run(job_id: str) -> None:
        from dataops.jobs.runner import execute

        execute(job_id)

    return run


JOB_TASKS = {kind: _job_task(kind) for kind in QUEUES}


@app.task(name="dataops.jobs.recover")
def recover_jobs() -> list[str]:
    from dataops.jobs.recovery import recover_stale

    return recover_stale()


@app.task(name="dataops.sync.poll")
def poll_labelstudio() -> list[str]:
    from dataops.labelstudio.jobs import poll_open_queues

    return poll_open_queues()


@app.task(name="dataops.dedup.shard", queue=QUEUES["dedup"])
def dedup_shard(run_id: str, shard: int) -> None:
    from dataops.dedup.shards import run_shard

    run_shard(run_id, shard)
