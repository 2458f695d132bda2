"""The overview: catalog counts, jobs at work and recent events, computed in SQL."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.support.api import bearer


def _seed() -> None:
    from dataops.catalog.models import Image
    from dataops.db import session_scope
    from dataops.dedup.models import DupGroup
    from dataops.jobs import service as jobs
    from dataops.labeling.models import LabelVersion

    with session_scope() as session:
        images = [
            Image(sha256=f"{n:064x}", uri=f"/data/{n}.jpg", status="quarantined" if n < 2 else "ok")
            for n in range(10)
        ]
        session.add_all(images)
        session.flush()
        big, merged, single = DupGroup(size=3), DupGroup(size=2), DupGroup(size=1)
        session.add_all([big, merged, single])
        session.flush()
        merged.merged_into_id = big.id

        def label(image: Image, task: str, status: str, n: int) -> LabelVersion:
            return LabelVersion(
                image_id=image.id,
                task=task,
                payload={"choice": "a"},
                source="import",
                source_id=str(n),
                source_key=f"k{n}",
                status=status,
            )

        session.add_all(
            [
                label(images[2], "helmets", "submitted", 1),
                label(images[2], "helmets", "accepted", 2),  # same image counts once
                label(images[3], "helmets", "accepted", 3),
                label(images[4], "helmets", "deleted", 4),  # a deletion is no label
                label(images[5], "helmets", "rejected", 5),  # nor a rejected one
                label(images[6], "boxes", "submitted", 6),
            ]
        )
        running = jobs.create_job(session, "ingest", {"paths": ["/a"]}, "user:ops")
        running.status, running.progress_done, running.progress_total = "running", 3, 10
        done = jobs.create_job(session, "dedup", {}, "user:ops")
        done.status = "succeeded"


def test_overview_counts_what_it_says(catalog: str) -> None:
    from dataops.db import session_scope
    from dataops.overview import service

    with session_scope() as session:
        service.catalog_counts(session, max_age=0)
    _seed()
    with session_scope() as session:
        before = service.catalog_counts(session)  # an empty catalog, kept for a minute
        view = service.overview(session)
        fresh = service.catalog_counts(session, max_age=0)
    assert before.images == view.catalog.images == 0  # seeded after the first count
    assert fresh.images == 10
    view = view.model_copy(update={"catalog": fresh})
    counts = view.catalog
    assert (counts.images, counts.quarantined, counts.duplicate_groups) == (10, 2, 1)
    assert [(t.task, t.images) for t in counts.labeled] == [("boxes", 1), ("helmets", 2)]
    assert [(j.kind, j.progress_done, j.progress_total) for j in view.jobs] == [("ingest", 3, 10)]
    assert view.events[0].action == "job.created"
    assert len(view.events) == 2


def test_overview_is_for_staff(api: TestClient, make_user: Any) -> None:
    _seed()
    answer = api.get("/v1/overview", headers=bearer(make_user("auditor")))
    assert answer.status_code == 200, answer.text
    assert answer.json()["catalog"]["images"] == 10
    jobs = api.get("/v1/overview/jobs", headers=bearer(make_user("scientist"))).json()["jobs"]
    assert [j["kind"] for j in jobs] == ["ingest"]
    vendor = bearer(make_user("vendor", vendor="acme"))
    assert api.get("/v1/overview", headers=vendor).status_code == 403
