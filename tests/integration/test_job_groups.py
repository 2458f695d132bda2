"""Jobs grouped by kind, sync jobs per queue: counts, newest status and summed results."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.support.api import bearer, make_queue
from tests.support.cli import run_json


def _job(
    kind: str, params: dict[str, Any], status: str, result: Any = None, *, age: int = 0
) -> str:
    from dataops.db import session_scope, utcnow
    from dataops.jobs import service

    with session_scope() as session:
        job = service.create_job(session, kind, params, "user:test")
        job.status = status
        job.result = result
        job.created_at = utcnow() - timedelta(minutes=age)
        if status in ("succeeded", "failed"):
            job.finished_at = job.created_at + timedelta(seconds=5)
            job.error = "boom" if status == "failed" else None
        return job.id


def _seed() -> dict[str, Any]:
    from dataops.db import session_scope
    from dataops.selection.models import Batch

    q1, q2 = make_queue("acme", []), make_queue("acme", [])
    with session_scope() as session:
        batch_of_q1 = session.scalar(select(Batch.id).where(Batch.queue_id == q1))
    ids = {
        "push": _job(
            "sync",
            {"action": "push", "batch_id": batch_of_q1},
            "succeeded",
            {"created": 40, "existing": 2, "status": "sent"},
            age=50,
        ),
        "pull_q1": [
            _job(
                "sync", {"action": "pull", "queue_id": q1}, "succeeded", {"imported": n}, age=40 - n
            )
            for n in range(1, 4)
        ],
        "pull_q1_running": _job("sync", {"action": "pull", "queue_id": q1}, "running", age=1),
        "pull_q2": _job("sync", {"action": "pull", "queue_id": q2}, "failed", age=30),
        "ingest_ok": _job("ingest", {"paths": ["/a"]}, "succeeded", {"new": 7, "files": 9}, age=20),
        "ingest_bad": _job("ingest", {"paths": ["/b"]}, "failed", age=10),
    }
    return {"q1": q1, "q2": q2, "ids": ids}


def test_sync_jobs_collapse_per_queue_and_sum_what_they_did(catalog: str) -> None:
    from dataops.db import session_scope
    from dataops.jobs.groups import job_groups

    seeded = _seed()
    with session_scope() as session:
        groups = {(g.kind, g.queue_id): g for g in job_groups(session)}
    assert set(groups) == {("sync", seeded["q1"]), ("sync", seeded["q2"]), ("ingest", None)}
    q1 = groups[("sync", seeded["q1"])]
    # push (by batch) and pulls (by queue) of the same queue are one group
    assert (q1.jobs, q1.running, q1.failed) == (5, 1, 0)
    assert q1.last_status == "running" and q1.last_job_id == seeded["ids"]["pull_q1_running"]
    assert q1.totals == {"created": 40, "existing": 2, "imported": 1 + 2 + 3}
    assert q1.queue is not None and q1.queue.startswith("acme-queue-")
    ingest = groups[("ingest", None)]
    assert (ingest.jobs, ingest.failed, ingest.last_status, ingest.last_error) == (
        2,
        1,
        "failed",
        "boom",
    )
    assert ingest.totals == {"new": 7, "files": 9} or ingest.totals == {"files": 9, "new": 7}
    assert groups[("sync", seeded["q2"])].totals == {}
    # newest group first: the running pull is the newest job
    with session_scope() as session:
        order = [(g.kind, g.queue_id) for g in job_groups(session)]
    assert order[0] == ("sync", seeded["q1"])


def test_groups_filter_by_kind_and_time(catalog: str) -> None:
    from dataops.db import session_scope, utcnow
    from dataops.jobs.groups import job_groups
    from dataops.jobs.schemas import JobGroupRequest

    _seed()
    with session_scope() as session:
        only_ingest = job_groups(session, JobGroupRequest(kind="ingest"))
        recent = job_groups(session, JobGroupRequest(since=utcnow() - timedelta(minutes=15)))
    assert [g.kind for g in only_ingest] == ["ingest"]
    # within 15 minutes: the failed ingest and the running pull only
    assert sorted((g.kind, g.jobs) for g in recent) == [("ingest", 1), ("sync", 1)]


def test_groups_over_http_and_cli(api: TestClient, make_user: Any) -> None:
    seeded = _seed()
    ops = make_user("labeling_ops")
    answer = api.get("/v1/jobs/groups", headers=bearer(ops))
    assert answer.status_code == 200, answer.text
    kinds = {(g["kind"], g["queue_id"]): g["jobs"] for g in answer.json()["groups"]}
    assert kinds[("sync", seeded["q1"])] == 5
    assert (
        api.get("/v1/jobs/groups", headers=bearer(make_user("vendor", vendor="acme"))).status_code
        == 403
    )
    # the plain list keeps its contract
    plain = api.get("/v1/jobs", headers=bearer(ops)).json()["jobs"]
    assert len(plain) == 8
    out = run_json("jobs", "list", "--grouped")
    assert {(g["kind"], g["jobs"]) for g in out["groups"]} >= {("ingest", 2)}
