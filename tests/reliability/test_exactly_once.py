"""One outcome per job id, whatever the redeliveries and recoveries.

Attempts of one job are held apart by a lease on the job row (claimed with one conditional
UPDATE, renewed by a heartbeat thread whatever the handler's progress) and, where two
attempts still meet, by constraints: a select job's batch is unique per job id.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select, text

from dataops.catalog import service as catalog_service
from dataops.catalog.models import Image
from dataops.config import reset_settings
from dataops.db import session_scope
from dataops.jobs import dispatch, runner
from dataops.jobs import service as jobs
from dataops.jobs.models import Job
from dataops.jobs.recovery import recover_stale
from dataops.selection import jobs as selection_jobs
from dataops.selection.models import Batch, BatchItem, ImageClaim
from dataops.selection.run import select_batch
from dataops.selection.schemas import select_request
from tests.reliability.test_concurrent_selection import seed_catalog
from tests.support.wait import wait_until

SIZE = 30
SELECT = {"strategy": "margin", "size": SIZE, "seed": 1}
FIVE = {"strategy": "margin", "size": 5}


def _new_job(kind: str, params: dict[str, Any]) -> str:
    with session_scope() as session:
        return jobs.create_job(session, kind, params, "test").id


def _job(job_id: str) -> Job:
    with session_scope() as session:
        return jobs.get_job(session, job_id)


def _until(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    wait_until(predicate, what, timeout=timeout)


def _one_batch_with_its_claims() -> None:
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 1
        batch_id = session.scalar(select(Batch.id))
        assert session.scalar(select(func.count()).select_from(BatchItem)) == SIZE
        claims = session.scalars(select(ImageClaim.batch_id)).all()
        assert len(claims) == SIZE and set(claims) == {batch_id}


def _in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(target())
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _set_worker(monkeypatch: pytest.MonkeyPatch, **values: float) -> None:
    for key, value in values.items():
        monkeypatch.setenv(f"DATAOPS_WORKER__{key.upper()}", str(value))
    reset_settings()


@pytest.mark.postgres
def test_two_attempts_of_one_select_job_racing_make_one_batch(
    pg_catalog: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both attempts look for the job's batch before either inserts one (a lease taken over
    from a stalled attempt): the unique job id lets one batch through, the other attempt
    waits for it and answers with it."""
    seed_catalog(60)
    job_id = _new_job("select", SELECT)
    both_looked = threading.Barrier(2, timeout=60)
    monkeypatch.setitem(runner.PAUSE_POINTS, "select.looked", both_looked.wait)
    ctx = runner.JobContext(job_id=job_id, params=SELECT, actor="test")
    threads = [_in_thread(lambda: selection_jobs.run_select_job(ctx)) for _ in range(2)]
    for thread, _ in threads:
        thread.join(timeout=120)
    answers = [out[0] for _, out in threads]
    assert not [a for a in answers if isinstance(a, BaseException)], answers
    assert answers[0]["id"] == answers[1]["id"]
    _one_batch_with_its_claims()


@pytest.mark.postgres
def test_a_second_delivery_while_the_first_runs_does_not_run_the_job(
    pg_catalog: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_catalog(60)
    job_id = _new_job("select", SELECT)
    inside, release = threading.Event(), threading.Event()

    def hold_first_attempt() -> None:
        inside.set()
        assert release.wait(60)

    monkeypatch.setitem(runner.PAUSE_POINTS, "select.before_commit", hold_first_attempt)
    thread, out = _in_thread(lambda: runner.execute(job_id))
    assert inside.wait(60)
    second = runner.execute(job_id)  # a redelivered or re-queued message
    assert (second.status, second.attempts) == ("running", 1)
    release.set()
    thread.join(timeout=120)
    done = out[0]
    assert not isinstance(done, BaseException), done
    assert (done.status, done.attempts) == ("succeeded", 1)
    _one_batch_with_its_claims()


@pytest.mark.postgres
def test_a_long_step_without_progress_keeps_its_lease(
    pg_catalog: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step several leases long that reports no progress is not recovered beside itself."""
    seed_catalog(60)
    _set_worker(monkeypatch, lease=0.6, stale_after=1)
    job_id = _new_job("select", SELECT)
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        inside.set()
        assert release.wait(60)

    monkeypatch.setitem(runner.PAUSE_POINTS, "select.before_commit", hold)
    thread, out = _in_thread(lambda: runner.execute(job_id))
    assert inside.wait(60)
    started = _job(job_id).started_at
    assert started is not None
    # Three leases' worth of silence from the handler: only the heartbeat keeps the job alive.
    _until(
        lambda: (_job(job_id).heartbeat_at or started) - started > timedelta(seconds=1.8),
        "the heartbeat to renew the lease",
    )
    assert recover_stale(older_than=0) == []
    assert recover_stale() == []
    job = _job(job_id)
    assert (job.status, job.attempts) == ("running", 1)
    release.set()
    thread.join(timeout=120)
    assert not isinstance(out[0], BaseException), out
    assert (out[0].status, out[0].attempts) == ("succeeded", 1)
    assert recover_stale(older_than=0) == []
    _one_batch_with_its_claims()


class _Died(BaseException):
    """The attempt's process went away: nothing after this point ran."""


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_expired_lease_is_recovered_and_the_next_attempt_runs(
    catalog: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_catalog(60)
    _set_worker(monkeypatch, lease=0.3)

    def die() -> None:
        raise _Died

    monkeypatch.setitem(runner.PAUSE_POINTS, "select.before_commit", die)
    job_id = _new_job("select", SELECT)
    with pytest.raises(_Died):
        runner.execute(job_id)
    assert _job(job_id).status == "running"
    monkeypatch.delitem(runner.PAUSE_POINTS, "select.before_commit")
    _until(lambda: recover_stale(older_than=0) == [job_id], "the dead attempt's lease to expire")
    job = _job(job_id)
    assert (job.status, job.attempts) == ("succeeded", 2)
    _one_batch_with_its_claims()


@pytest.mark.postgres
@pytest.mark.redis
def test_a_pending_job_whose_message_still_waits_is_not_sent_twice(
    pg_catalog: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAOPS_BROKER_URL", redis_url)
    reset_settings()
    job = dispatch.submit("select", SELECT, actor="test")  # no worker: the message waits
    client = redis.Redis.from_url(redis_url)
    assert client.llen("dedup") == 1
    assert recover_stale(older_than=0) == []
    assert client.llen("dedup") == 1
    client.flushdb()  # the broker lost it
    assert recover_stale(older_than=0) == [job.id]
    assert client.llen("dedup") == 1
    assert recover_stale(older_than=0) == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_ingest_finished_by_a_later_attempt_reports_every_new_image(
    catalog: str, image_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAOPS_INGEST__BATCH_SIZE", "4")
    monkeypatch.setenv("DATAOPS_INGEST__WORKERS", "1")
    _set_worker(monkeypatch, lease=0.3)
    folder = tmp_path / "twelve"
    folder.mkdir()
    for src in sorted(image_dir.glob("*.jpg"))[:12]:
        shutil.copy(src, folder / src.name)
    real = catalog_service.record_inspections
    calls = []

    def die_on_the_third_batch(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise _Died
        return real(*args, **kwargs)

    monkeypatch.setattr(catalog_service, "record_inspections", die_on_the_third_batch)
    job_id = _new_job("ingest", {"paths": [str(folder)]})
    with pytest.raises(_Died):
        runner.execute(job_id)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Image)) == 8
    _until(lambda: recover_stale(older_than=0) == [job_id], "the dead attempt's lease to expire")
    job = _job(job_id)
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert job.result is not None
    assert (job.result["files"], job.result["new"], job.result["skipped"]) == (12, 12, 0)
    again = dispatch.submit("ingest", {"paths": [str(folder)]}, actor="test")
    assert again.result is not None
    assert (again.result["new"], again.result["skipped"]) == (0, 12)


@pytest.mark.postgres
def test_a_batch_names_its_job_once(pg_catalog: str) -> None:
    seed_catalog(60)
    job_id = _new_job("select", SELECT)
    with session_scope() as session:
        select_batch(session, select_request(FIVE), job_id=job_id, actor="t")
    with pytest.raises(Exception, match="ix_batches_job_id"), session_scope() as session:
        select_batch(session, select_request(FIVE), job_id=job_id, actor="t")
    with session_scope() as session:
        assert session.execute(text("SELECT count(*) FROM batches")).scalar_one() == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_job_whose_attempts_keep_dying_fails_with_a_reason(
    catalog: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_catalog(60)
    _set_worker(monkeypatch, lease=0.3, max_attempts=2)

    def die() -> None:
        raise _Died

    monkeypatch.setitem(runner.PAUSE_POINTS, "select.before_commit", die)
    job_id = _new_job("select", SELECT)
    with pytest.raises(_Died):
        runner.execute(job_id)
    with pytest.raises(_Died):  # embedded recovery runs the second attempt here
        _until(lambda: recover_stale(older_than=0) != [], "the first lease to expire")
    assert _job(job_id).attempts == 2
    assert runner.execute(job_id).attempts == 2  # a late redelivery: no third attempt
    _until(lambda: _job(job_id).status == "failed" or bool(recover_stale()), "recovery")
    job = _job(job_id)
    assert (job.status, job.attempts) == ("failed", 2)
    assert job.error is not None and job.error.startswith("gave up after 2 attempts")
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 0


# --- jobs whose work is one transaction: the outcome is written in it ------------------------


def _labeled_images(image_dir: Path) -> list[int]:
    """Ingested images (sorted by sha256) with one accepted label each, for manifests."""
    from dataops.catalog.ingest import ingest
    from dataops.labeling.service import add_label_version

    ingest([str(image_dir)], transaction=session_scope)
    with session_scope() as session:
        ids = list(
            session.scalars(select(Image.id).where(Image.status == "ok").order_by(Image.sha256))
        )
        for i, image_id in enumerate(ids):
            add_label_version(
                session,
                image_id=image_id,
                payload={"class": "ab"[i % 2]},
                source="csv",
                source_id=str(image_id),
                status="accepted",
            )
    return ids


def _die_after_the_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """The attempt's process goes away once the handler has returned: its work committed,
    nothing the runner does afterwards runs."""
    real = runner.handler_for

    def handler(kind: str) -> Callable[[runner.JobContext], dict[str, Any]]:
        work = real(kind)

        def then_die(ctx: runner.JobContext) -> dict[str, Any]:
            work(ctx)
            raise _Died

        return then_die

    monkeypatch.setattr(runner, "handler_for", handler)


def _count(model: Any) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _events(kind: str) -> int:
    from dataops.events.models import Event

    with session_scope() as session:
        stmt = select(func.count()).select_from(Event).where(Event.action == kind)
        return int(session.scalar(stmt) or 0)


def _retried_after_a_death(job_id: str, monkeypatch: pytest.MonkeyPatch) -> Job:
    """Kill the first attempt after its work, then recover and redeliver as a worker would."""
    _set_worker(monkeypatch, lease=0.3)
    real = runner.handler_for
    _die_after_the_handler(monkeypatch)
    with pytest.raises(_Died):
        runner.execute(job_id)
    monkeypatch.setattr(runner, "handler_for", real)
    time.sleep(0.5)  # the first attempt's lease, had it any left, runs out
    recover_stale(older_than=0)
    again = runner.execute(job_id)  # a late redelivery of the first message
    assert _job(job_id).result == again.result
    return again


@pytest.mark.slow
def test_an_audit_job_retried_after_its_work_committed_answers_with_its_audit(
    catalog: str, image_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataops.audits.models import Audit
    from tests.integration.test_audit_service import _classification_batch

    ingest_ids = _labeled_images(image_dir)
    built = _classification_batch(ingest_ids)
    params = {"batch_id": built.batch_id, "gate": 0.6, "resamples": 0}
    job_id = _new_job("audit", params)
    job = _retried_after_a_death(job_id, monkeypatch)
    assert (job.status, job.attempts, job.error) == ("succeeded", 1, None)
    assert _count(Audit) == 1
    with session_scope() as session:
        audit_id = session.scalar(select(Audit.id))
    assert job.result is not None and job.result["id"] == audit_id
    assert _events("audit.created") == 1
    assert _events("job.succeeded") == 1


def test_a_manifest_job_retried_after_its_work_committed_answers_with_its_manifest(
    catalog: str, image_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataops.manifests.models import Manifest

    _labeled_images(image_dir)
    job_id = _new_job("manifest", {"name": "train-v1", "seed": 3})
    job = _retried_after_a_death(job_id, monkeypatch)
    assert (job.status, job.attempts, job.error) == ("succeeded", 1, None)
    assert _count(Manifest) == 1
    with session_scope() as session:
        manifest = session.scalars(select(Manifest)).one()
    assert job.result is not None
    assert (job.result["name"], job.result["id"]) == ("train-v1", manifest.content_hash)
    assert _events("job.succeeded") == 1


@pytest.mark.postgres
@pytest.mark.parametrize("kind", ["audit", "manifest"])
def test_an_attempt_that_lost_its_lease_mid_work_leaves_one_outcome(
    kind: str, pg_catalog: str, image_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt stalls inside its work transaction (audit or manifest written, not
    committed) until its lease runs out and a second attempt takes the job: the first one's
    work rolls back, the second one's is the job's only outcome."""
    from dataops.audits import service as audits
    from dataops.audits.models import Audit
    from dataops.manifests import service as manifests
    from dataops.manifests.models import Manifest

    ids = _labeled_images(image_dir)
    if kind == "audit":
        from tests.integration.test_audit_service import _classification_batch

        module, out, model = audits, "audit_out", Audit
        params: dict[str, Any] = {
            "batch_id": _classification_batch(ids).batch_id,
            "gate": 0.6,
            "resamples": 0,
        }
    else:
        module, out, model, params = manifests, "manifest_out", Manifest, {"name": "m", "seed": 1}
    job_id = _new_job(kind, params)
    inside, release = threading.Event(), threading.Event()
    real = getattr(module, out)

    def first_one_stalls(*args: Any, **kwargs: Any) -> Any:
        if not inside.is_set():
            inside.set()
            assert release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, out, first_one_stalls)
    first, first_out = _in_thread(lambda: runner.execute(job_id))
    assert inside.wait(120)
    stalled = _job(job_id).lease_owner
    assert stalled is not None
    with session_scope() as session:  # its lease runs out: nobody heard from it
        assert jobs.take_over(session, job_id, stalled)
    second, second_out = _in_thread(lambda: runner.execute(job_id))
    _until(lambda: _job(job_id).attempts == 2, "the second attempt to claim the job")
    release.set()
    for thread in (first, second):
        thread.join(timeout=120)
    answers = first_out + second_out
    assert not [a for a in answers if isinstance(a, BaseException)], answers
    job = _job(job_id)
    assert (job.status, job.attempts, job.error) == ("succeeded", 2, None)
    assert answers[0].error is None  # the stalled attempt stopped without an outcome of its own
    assert answers[1].result == job.result
    assert _count(model) == 1
    with session_scope() as session:
        made = session.scalars(select(model)).one()
    assert job.result is not None
    assert job.result["id"] == (made.id if kind == "audit" else made.content_hash)
    assert _events("job.succeeded") == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_dedup_job_retried_after_its_work_committed_answers_with_its_summary(
    catalog: str, image_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second run would find no new image and report nothing: the retry repeats the first."""
    ids = _labeled_images(image_dir)
    job_id = _new_job("dedup", {})
    job = _retried_after_a_death(job_id, monkeypatch)
    assert (job.status, job.attempts, job.error) == ("succeeded", 1, None)
    assert job.result is not None and job.result["new_images"] == len(ids)
    assert _events("job.succeeded") == 1


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_score_job_retried_after_its_last_commit_answers_with_its_result(
    catalog: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Predictions are one per (model version, image), so a retry would score nothing and
    record a second `model.scored` with `scored: 0`; it answers with the first result."""
    from dataops.catalog.ingest import ingest
    from dataops.scoring import register as scoring
    from tests.support.brightness_model import CLASSES, export, write_gray

    grays = [write_gray(tmp_path / "grays" / f"g{g:03d}.png", g) for g in (20, 100, 200)]
    ingest([str(tmp_path / "grays")], transaction=session_scope)
    with session_scope() as session:
        scoring.register_model(
            session, export(tmp_path / "b.pt"), name="bright", classes=CLASSES, actor="test"
        )
    job_id = _new_job("score", {"model": "bright"})
    job = _retried_after_a_death(job_id, monkeypatch)
    assert (job.status, job.attempts, job.error) == ("succeeded", 1, None)
    assert job.result is not None and job.result["scored"] == len(grays)
    assert _events("model.scored") == 1
