"""Duplicate groups a page at a time with a few members each (image grids), and a manifest's
leak report paged over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from dataops.catalog.ingest import ingest
from dataops.catalog.models import Image
from dataops.db import session_scope
from dataops.dedup import service
from dataops.manifests.leaks import manifest_leaks
from tests.support.api import bearer, create_user_token
from tests.support.duplicates import make_groups, make_manifest


@pytest.fixture
def image_ids(catalog: str, image_dir: Path) -> list[int]:
    ingest([str(image_dir)], transaction=session_scope)
    with session_scope() as s:
        return list(s.scalars(select(Image.id).where(Image.status == "ok").order_by(Image.id)))


def test_groups_page_shows_a_few_members_and_counts_all(image_ids: list[int]) -> None:
    big = [image_ids[5], *image_ids[:5]]  # representative is not the lowest id
    with session_scope() as s:
        groups = make_groups(s, [big, image_ids[6:8], image_ids[8:10]])
    with session_scope() as s:
        page = service.list_groups(s, limit=2, members_per_group=3)
        rest = service.list_groups(s, limit=2, offset=2, members_per_group=3)
        full = service.list_groups(s)

    assert [g.id for g in page] == groups[:2]
    assert [g.id for g in rest] == groups[2:]
    first = page[0]
    assert first.size == 6
    assert [m.image_id for m in first.members] == [image_ids[5], image_ids[0], image_ids[1]]
    assert [m.image_id for m in page[1].members] == image_ids[6:8]
    assert page[1].size == 2
    # Unlimited, the listing is what it always was, with the same size.
    assert [m.image_id for m in full[0].members] == big[:1] + sorted(big[1:])
    assert full[0].size == 6


def test_manifest_leaks_are_counted_in_sql_and_paged(image_ids: list[int], api: TestClient) -> None:
    with session_scope() as s:
        a, b, c = make_groups(s, [image_ids[0:2], image_ids[2:4], image_ids[4:6]])
        make_manifest(
            s,
            "leaky-v1",
            {
                image_ids[0]: "train",
                image_ids[1]: "test",  # group a leaks
                image_ids[2]: "train",
                image_ids[3]: "train",  # group b does not
                image_ids[4]: "val",
                image_ids[5]: "train",  # group c leaks
                image_ids[6]: "test",  # ungrouped
            },
        )
    with session_scope() as s:
        report = manifest_leaks(s, "leaky-v1")
        second = manifest_leaks(s, "leaky-v1", limit=1, offset=1)

    assert (report.groups_checked, report.total_leaks) == (3, 2)
    assert [leak.group_id for leak in report.leaks] == [a, c]
    assert report.leaks[0].splits == {"test": [image_ids[1]], "train": [image_ids[0]]}
    assert report.leaks[0].representative == image_ids[0]
    assert [leak.group_id for leak in second.leaks] == [c]
    assert second.total_leaks == 2
    assert b not in {leak.group_id for leak in report.leaks}

    # The counts are kept per dedup state: a later dedup change is seen at once.
    with session_scope() as s:
        (d,) = make_groups(s, [[image_ids[6], image_ids[2]]])
    with session_scope() as s:
        again = manifest_leaks(s, "leaky-v1")
    assert [leak.group_id for leak in again.leaks] == [a, c, d]
    assert again.leaks[2].splits == {"test": [image_ids[6]], "train": [image_ids[2]]}

    staff = bearer(create_user_token("scientist"))
    vendor = bearer(create_user_token("vendor", vendor="acme"))
    got = api.get("/v1/manifests/leaky-v1/leaks", params={"limit": 1}, headers=staff)
    assert got.status_code == 200
    assert got.json()["total_leaks"] == 3
    assert [leak["group_id"] for leak in got.json()["leaks"]] == [a]
    assert api.get("/v1/manifests/leaky-v1/leaks", headers=vendor).status_code == 403
    assert api.get("/v1/manifests/nope/leaks", headers=staff).status_code == 404
    listing = api.get("/v1/dedup/groups", params={"members": 1}, headers=staff).json()
    assert [len(g["members"]) for g in listing["groups"]] == [1, 1, 1, 1]
    assert [g["size"] for g in listing["groups"]] == [2, 2, 2, 2]
