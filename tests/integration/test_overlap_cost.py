"""Overlap costs only its share: Label Studio asks for N + p·N·(k−1) answers, not k·N."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from dataops.db import session_scope
from dataops.labelstudio.client import LabelStudioClient, prediction_result
from tests.support import vendor_world
from tests.support.labelstudio import LabelStudioInstance

REGULAR = 24
OVERLAP = 0.5
GOLD = 0.25
ANSWERS = 2  # k: answers on an overlap item


def _drain(url: str, token: str, project: int) -> list[int]:
    """Label whatever Label Studio's own queue offers this account until it offers nothing."""
    labelled: list[int] = []
    with (
        httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=30) as http,
        LabelStudioClient(url, token) as client,
    ):
        for _ in range(200):
            offered = http.get(f"/api/projects/{project}/next/")
            if offered.status_code != 200 or not offered.json().get("id"):
                break
            task_id = int(offered.json()["id"])
            assert task_id not in labelled, "Label Studio offered the same task twice"
            client.create_annotation(
                task_id, prediction_result("classification", label=vendor_world.CLASSES[0])
            )
            labelled.append(task_id)
    return labelled


@pytest.mark.labelstudio
@pytest.mark.slow
def test_label_studio_asks_for_overlap_answers_on_the_overlap_share_only(
    pg_catalog: str,
    tmp_path: Path,
    corpus: Path,
    labelstudio: LabelStudioInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataops.selection.models import BatchItem

    vendor_world.use_labelstudio(monkeypatch, labelstudio.url, labelstudio.admin_token)
    images = vendor_world.copy_clothing(corpus, tmp_path / "images", REGULAR + 8)
    world = vendor_world.build(images, overlap=OVERLAP, gold=GOLD, gold_pool=8)
    batch_id = vendor_world.add_batch(
        world, world.unlabelled[:REGULAR], seed=3, overlap=OVERLAP, gold=GOLD
    )
    pushed = vendor_world.push(batch_id, page_size=10)

    n = pushed["items"]  # N, gold included
    gold = pushed["gold_items"]
    assert gold == math.floor(GOLD * REGULAR + 0.5) and n == REGULAR + gold
    share = math.floor(OVERLAP * n + 0.5)  # p·N, drawn from gold and regular items alike
    assert pushed["overlap_items"] == share
    expected = n + share * (ANSWERS - 1)

    with LabelStudioClient(labelstudio.url, labelstudio.admin_token) as admin:
        tasks = list(admin.list_tasks(pushed["ls_project_id"]))
    asked = sum(int(task["overlap"]) for task in tasks)
    assert len(tasks) == n
    assert asked == expected, f"Label Studio asks for {asked} answers; k·N would be {ANSWERS * n}"
    assert asked < ANSWERS * n
    with session_scope() as session:
        required = dict(
            session.execute(
                select(BatchItem.ls_task_id, BatchItem.required_annotations).where(
                    BatchItem.batch_id == batch_id
                )
            ).all()
        )
    assert {int(t["id"]): int(t["overlap"]) for t in tasks} == required

    # What two real annotators are offered by Label Studio's own labeling queue.
    first = _drain(labelstudio.url, labelstudio.annotator_tokens[0], pushed["ls_project_id"])
    second = _drain(labelstudio.url, labelstudio.annotator_tokens[1], pushed["ls_project_id"])
    assert len(first) == n
    assert len(second) == share
    assert set(second) == {task_id for task_id, k in required.items() if k == ANSWERS}
    with LabelStudioClient(labelstudio.url, labelstudio.admin_token) as admin:
        after = list(admin.list_tasks(pushed["ls_project_id"]))
    assert all(task["is_labeled"] for task in after)
    assert sum(len(task["annotations"]) for task in after) == expected
