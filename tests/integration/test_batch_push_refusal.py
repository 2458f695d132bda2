"""Pushing a batch without a vendor queue is refused before any job starts, and each face
says how to give it one: the CLI names its commands, the API keeps to its own words."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dataops.db import session_scope
from dataops.jobs import service as jobs
from dataops.jobs.schemas import JobListRequest
from dataops.selection import run
from dataops.selection.schemas import select_request
from tests.integration.test_queue_task import images
from tests.support.api import MakeUser, bearer
from tests.support.cli import run_cli


def _sync_jobs() -> int:
    with session_scope() as session:
        return len(jobs.list_jobs(session, JobListRequest(kind="sync")))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_queueless_draft_is_refused_with_the_commands_that_fix_it(
    tmp_path: Path, catalog: str, api: TestClient, make_user: MakeUser
) -> None:
    images(tmp_path, n=3)
    with session_scope() as session:
        request = select_request({"strategy": "random", "purpose": "cold_start", "size": 2})
        draft = run.select_batch(session, request, actor="t")
        batch, queue = draft.id, draft.queue_id
    assert queue is None

    refused = run_cli("batches", "push", str(batch), check=False)
    assert refused.returncode == 2
    message = " ".join(refused.stderr.split())  # undo the console's line wrapping
    assert f"`dataops batches assign {batch} --queue Q`" in message
    assert f"`dataops batches cancel {batch}`" in message

    answer = api.post(f"/v1/batches/{batch}/push", headers=bearer(make_user("labeling_ops")))
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "conflict"
    assert "has no vendor queue" in error["message"] and "dataops" not in error["message"]
    assert _sync_jobs() == 0
