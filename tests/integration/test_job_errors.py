"""A failed job keeps its error's fields, so each face spells them its own way.

A CLI waiting on a worker only has the job row: it must still name ``--probabilities``,
where an HTTP client polling the job reads ``probabilities``.
"""

from __future__ import annotations

import json

import pytest

from dataops.cli.errors import flag_for, job_error
from dataops.cli.jobrun import raise_if_failed
from dataops.errors import DataopsError
from tests.support.cli import run_cli

# The CLI checks this before it starts a job; a job started over HTTP or by another client
# (here: directly) meets the same check inside the handler.
PARAMS = {"task": "default", "source": "imported", "out_of_sample": True}
API_TEXT = "imported needs probabilities: a CSV of sha256 and one column per class"
CLI_TEXT = "imported needs --probabilities: a CSV of sha256 and one column per class"


def _failed_job() -> str:
    from dataops.jobs import dispatch
    from dataops.quality.errors import InvalidProbabilities

    with pytest.raises(InvalidProbabilities):
        dispatch.submit("label_quality", PARAMS, actor="test")
    from dataops.db import session_scope
    from dataops.jobs import service
    from dataops.jobs.schemas import JobListRequest

    with session_scope() as session:
        (job,) = service.list_jobs(session, JobListRequest(kind="label_quality"))
        return job.id


def test_the_job_row_keeps_the_template_and_the_api_spelling(catalog: str) -> None:
    from dataops.db import session_scope
    from dataops.jobs import service

    job_id = _failed_job()
    with session_scope() as session:
        job = service.get_job(session, job_id)
        assert job.status == "failed"
        assert job.error == API_TEXT
        assert job.result == {
            "error": {
                "code": "invalid_probabilities",
                "status": 400,
                "template": "imported needs {probabilities}: a CSV of sha256 and one column "
                "per class",
                "fields": ["probabilities"],
            }
        }
        assert job_error(job.error, job.result) == CLI_TEXT
        with pytest.raises(DataopsError) as caught:
            raise_if_failed(job, job.kind)
    assert caught.value.render(flag_for) == f"job {job_id} (label_quality) failed: {CLI_TEXT}"


def test_jobs_show_and_list_name_the_flag_and_json_keeps_the_record(catalog: str) -> None:
    job_id = _failed_job()
    wide = {"COLUMNS": "300"}  # one line per cell, so the flag is never wrapped
    shown = run_cli("jobs", "show", job_id, env=wide).stdout
    assert CLI_TEXT in shown
    listed = run_cli("jobs", "list", "--status", "failed", env=wide).stdout
    assert CLI_TEXT[:60] in listed
    data = json.loads(run_cli("jobs", "show", job_id, "--json").stdout)
    assert data["error"] == API_TEXT


def test_an_error_without_a_record_is_shown_as_stored() -> None:
    assert job_error("gave up after 3 attempts", None) == "gave up after 3 attempts"
    assert job_error("boom", {"error": {"code": "x", "status": 400}}) == "boom"
    assert job_error("boom", {"error": {"template": "{a}", "fields": [1]}}) == "boom"
