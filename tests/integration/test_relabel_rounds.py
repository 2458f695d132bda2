"""Relabel rounds converge: a rejected batch relabels what failed and releases what agreed, a
relabel round is judged "k of n", the chain ends after the queue's rounds, and every item
ends accepted or released. The last test drives two rounds through a real Label Studio with
three annotator accounts."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from dataops.audits import service as audits
from dataops.audits.errors import AuditInputError
from dataops.audits.run import run_audit
from dataops.audits.schemas import AuditRequest
from dataops.catalog.models import Image
from dataops.db import session_scope
from dataops.errors import DataopsError
from dataops.labeling import service as labeling
from dataops.labeling.models import Annotator, Guideline, LabelVersion
from dataops.selection.models import Batch, BatchItem, ImageClaim
from dataops.storage import get_store
from tests.support.labelstudio import LabelStudioInstance, free_port, label_stream

CLASSES = ["cat", "dog", "bird"]
TASK = "pets"
QUEUE = "acme-pets"
ANNOTATORS = ("ann", "ben", "cho")


@dataclass
class World:
    queue_id: int
    images: list[int]
    annotators: dict[str, int]


def _world(n: int, **policy: Any) -> World:
    """A vendor with three annotators, a classification guideline, a queue with ``policy``
    and ``n`` catalog images."""
    from dataops.labelstudio.config import label_config

    with session_scope() as s:
        vendor, _ = labeling.create_vendor(s, "acme")
        names = {}
        for name in ANNOTATORS:
            row = Annotator(name=name, vendor_id=vendor.id)
            s.add(row)
            s.flush()
            names[name] = row.id
        s.add(
            Guideline(
                name=TASK,
                version=1,
                sha256=hashlib.sha256(b"pets v1").hexdigest(),
                kind="classification",
                classes=CLASSES,
                body="Pick the animal.",
                label_config=label_config("classification", CLASSES),
            )
        )
        s.flush()
        queue, _ = labeling.create_queue(
            s, QUEUE, vendor="acme", guideline=f"{TASK}:1", overlap=1.0, **policy
        )
        images = []
        for i in range(n):
            image = Image(
                sha256=hashlib.sha256(f"pet-{i}".encode()).hexdigest(),
                uri=f"/nowhere/pet-{i}.jpg",
                bytes=1,
            )
            s.add(image)
            s.flush()
            images.append(image.id)
        return World(queue.id, images, names)


def _batch(world: World, image_ids: list[int], *, status: str = "delivered") -> int:
    """A two-answer batch of the queue holding ``image_ids``."""
    with session_scope() as s:
        batch = Batch(
            purpose="active_learning",
            strategy="random",
            queue_id=world.queue_id,
            status=status,
            seed=3,
            size=len(image_ids),
            overlap=1.0,
        )
        s.add(batch)
        s.flush()
        for position, image_id in enumerate(image_ids):
            s.add(
                BatchItem(
                    batch_id=batch.id,
                    image_id=image_id,
                    item_key=f"t{batch.id}-{image_id}",
                    position=position,
                    is_overlap=True,
                    required_annotations=2,
                )
            )
            s.add(ImageClaim(image_id=image_id, batch_id=batch.id))
        return batch.id


def _answer(world: World, batch_id: int, answers: dict[int, dict[str, str]]) -> None:
    """Answers as the pull stores them: {image id: {annotator: class}}."""
    with session_scope() as s:
        for image_id, given in answers.items():
            for name, cls in given.items():
                key = f"{batch_id}:{image_id}:{name}"
                s.add(
                    LabelVersion(
                        image_id=image_id,
                        annotator_id=world.annotators[name],
                        batch_id=batch_id,
                        task=TASK,
                        payload={"class": cls},
                        source="csv",
                        source_id=key,
                        source_key=f"csv:{key}:-",
                    )
                )
        batch = s.get(Batch, batch_id)
        assert batch is not None
        batch.status = "delivered"


def _audit(batch_id: int, gate: float = 0.95) -> dict[str, Any]:
    with session_scope() as s:
        audit = run_audit(
            s, AuditRequest(batch_id=batch_id, gate=gate, resamples=0), actor="auditor"
        )
        return {
            "id": audit.id,
            "decision": audit.decision,
            "relabel": audit.relabel_batch_id,
            "metrics": audit.metrics,
        }


def _statuses(batch_id: int) -> dict[int, set[str]]:
    with session_scope() as s:
        out: dict[int, set[str]] = {}
        for v in s.scalars(select(LabelVersion).where(LabelVersion.batch_id == batch_id)):
            out.setdefault(v.image_id, set()).add(v.status)
        return out


def _relabel_items(batch_id: int) -> dict[int, BatchItem]:
    with session_scope() as s:
        rows = s.scalars(select(BatchItem).where(BatchItem.batch_id == batch_id))
        return {item.image_id: item for item in rows}


def _selectable(count: int) -> set[int]:
    """The images a new batch of the queue can pick, when exactly ``count`` can be."""
    from dataops.selection.errors import NothingEligible
    from dataops.selection.run import select_batch
    from dataops.selection.schemas import select_request

    request = {"strategy": "random", "queue": QUEUE, "seed": 1}

    with session_scope() as s:
        batch = select_batch(s, select_request({**request, "size": count}))
        picked = set(s.scalars(select(BatchItem.image_id).where(BatchItem.batch_id == batch.id)))
        with pytest.raises(NothingEligible):
            select_batch(s, select_request({**request, "size": 1}))
        s.rollback()
        return picked


def _ends_accepted_or_released(image_ids: list[int]) -> dict[int, str]:
    """Each image's end state: accepted (it has an accepted label) or released (none of its
    labels is submitted and no batch claims it)."""
    with session_scope() as s:
        claimed = set(s.scalars(select(ImageClaim.image_id)))
        ends = {}
        for image_id in image_ids:
            statuses = {
                v.status
                for v in s.scalars(select(LabelVersion).where(LabelVersion.image_id == image_id))
            }
            if labeling.accepted_label(s, image_id, TASK) is not None:
                ends[image_id] = "accepted"
            elif "submitted" not in statuses and image_id not in claimed:
                ends[image_id] = "released"
            else:
                ends[image_id] = f"stuck: {sorted(statuses)}, claimed {image_id in claimed}"
        return ends


# --- the reported dead end ------------------------------------------------------------------


def test_rejected_batch_relabels_what_failed_and_releases_what_agreed(catalog: str) -> None:
    world = _world(6)
    a, b, c, d = world.images[:4]
    batch_id = _batch(world, [a, b, c, d])
    _answer(
        world,
        batch_id,
        {
            a: {"ann": "cat", "ben": "cat"},
            b: {"ann": "dog", "ben": "dog"},
            c: {"ann": "cat", "ben": "dog"},
            d: {"ann": "bird", "ben": "dog"},
        },
    )
    audit = _audit(batch_id)
    assert audit["decision"] == "rejected"
    # Agreed items are released with their answers kept: not ground truth, back in the pool.
    statuses = _statuses(batch_id)
    assert statuses[a] == statuses[b] == {"released"}
    with session_scope() as s:
        kept = s.scalars(
            select(LabelVersion.payload).where(
                LabelVersion.batch_id == batch_id, LabelVersion.image_id == a
            )
        ).all()
        assert kept == [{"class": "cat"}, {"class": "cat"}]
        assert labeling.accepted_label(s, a, TASK) is None
    # Ties go to a relabel batch asking three answers each; their first answers are released.
    relabel = _relabel_items(audit["relabel"])
    assert set(relabel) == {c, d}
    assert {item.required_annotations for item in relabel.values()} == {3}
    assert statuses[c] == statuses[d] == {"released"}
    with session_scope() as s:
        child = s.get_one(Batch, audit["relabel"])
        assert child.params["round"] == 2
        assert (child.params["answers"], child.params["agree"]) == (3, 2)
    counts = audit["metrics"]["counts"]
    assert (counts["items_released"], counts["items_relabeled"]) == (2, 2)
    assert counts["labels_released"] == 8
    with session_scope() as s:
        shown = audits.audit_out(audits.get_audit(s, audit["id"]))
        assert (shown.n_relabeled, shown.n_released) == (2, 2)
    # Released images can be selected again; relabel items stay claimed.
    assert _selectable(4) == {a, b, *world.images[4:]}


def test_two_of_three_majority_accepts_a_relabel_round(catalog: str) -> None:
    world = _world(4)
    a, b, c, d = world.images
    first = _batch(world, [a, b, c, d])
    _answer(
        world,
        first,
        {
            a: {"ann": "cat", "ben": "cat"},
            b: {"ann": "cat", "ben": "dog"},
            c: {"ann": "bird", "ben": "dog"},
            d: {"ann": "dog", "ben": "cat"},
        },
    )
    rejected = _audit(first)
    assert rejected["decision"] == "rejected"
    second = rejected["relabel"]
    assert set(_relabel_items(second)) == {b, c, d}
    _answer(
        world,
        second,
        {
            b: {"ann": "cat", "ben": "cat", "cho": "dog"},
            c: {"ann": "bird", "ben": "bird", "cho": "bird"},
            d: {"ann": "dog", "ben": "dog", "cho": "cat"},
        },
    )
    accepted = _audit(second)
    assert accepted["decision"] == "accepted"
    assert accepted["metrics"]["gate"]["pass_rate"] == 1.0
    assert accepted["relabel"] is None
    assert accepted["metrics"]["parameters"]["quorum"] == 2
    with session_scope() as s:
        labels = {i: labeling.accepted_label(s, i, TASK) for i in (b, c, d)}
        assert {i: v.payload["class"] for i, v in labels.items() if v} == {
            b: "cat",
            c: "bird",
            d: "dog",
        }
    statuses = _statuses(second)
    assert statuses[b] == statuses[d] == {"accepted", "rejected"}
    assert statuses[c] == {"accepted"}
    assert _ends_accepted_or_released([a, b, c, d]) == {
        a: "released",
        b: "accepted",
        c: "accepted",
        d: "accepted",
    }


def test_the_relabel_rule_and_rounds_are_the_queue_s(catalog: str) -> None:
    world = _world(2, relabel_agree=3, relabel_rounds=1)
    a, b = world.images
    first = _batch(world, [a, b])
    _answer(world, first, {a: {"ann": "cat", "ben": "dog"}, b: {"ann": "cat", "ben": "dog"}})
    second = _audit(first)["relabel"]
    _answer(
        world,
        second,
        {
            a: {"ann": "cat", "ben": "cat", "cho": "dog"},
            b: {"ann": "dog", "ben": "dog", "cho": "dog"},
        },
    )
    audit = _audit(second, gate=0.5)
    # 2 of 3 is not enough under "3 of 3"; the one relabel round is used up, so the item is
    # released for adjudication instead of relabeled again.
    assert audit["decision"] == "accepted"
    assert audit["relabel"] is None
    [item] = [i for i in audit["metrics"]["disputed"]]
    assert item["reason"] == "2 of 3 answers match; 3 needed"
    outcome = audit["metrics"]["outcome"]
    assert outcome["relabel_rule"] == "3 of 3 matching answers"
    assert outcome["unresolved"] == [item["item"]]
    assert outcome["items"] == {"accepted": 1, "relabel": 0, "released": 1, "unanswered": 0}
    assert _ends_accepted_or_released([a, b]) == {a: "released", b: "accepted"}


@pytest.mark.parametrize(
    ("on_reject", "relabeled", "released"),
    [("release", set(), {0, 1, 2}), ("relabel_all", {0, 1, 2}, set())],
)
def test_on_reject_policy(
    catalog: str, on_reject: str, relabeled: set[int], released: set[int]
) -> None:
    world = _world(3, on_reject=on_reject)
    ids = world.images
    batch_id = _batch(world, ids)
    _answer(
        world,
        batch_id,
        {
            ids[0]: {"ann": "cat", "ben": "cat"},
            ids[1]: {"ann": "cat", "ben": "dog"},
            ids[2]: {"ann": "dog", "ben": "bird"},
        },
    )
    audit = _audit(batch_id)
    assert audit["decision"] == "rejected"
    assert set(_relabel_items(audit["relabel"]) if audit["relabel"] else {}) == {
        ids[i] for i in relabeled
    }
    assert audit["metrics"]["outcome"]["policy"]["on_reject"] == on_reject
    assert audit["metrics"]["counts"]["items_released"] == len(released)
    assert all(s == {"released"} for s in _statuses(batch_id).values())


def test_the_rule_in_force_is_in_the_audit_and_its_reports(catalog: str) -> None:
    world = _world(2, relabel_answers=5, relabel_agree=3)
    a, b = world.images
    batch_id = _batch(world, [a, b])
    _answer(world, batch_id, {a: {"ann": "cat", "ben": "cat"}, b: {"ann": "cat", "ben": "dog"}})
    audit = _audit(batch_id)
    expected = {
        "on_reject": "relabel_failed",
        "relabel_answers": 5,
        "relabel_agree": 3,
        "relabel_rounds": 2,
        "accept_rule": "majority",
    }
    assert audit["metrics"]["parameters"]["policy"] == expected
    assert audit["metrics"]["outcome"]["relabel_rule"] == "3 of 5 matching answers"
    assert {i.required_annotations for i in _relabel_items(audit["relabel"]).values()} == {5}
    with session_scope() as s:
        row = audits.get_audit(s, audit["id"])
        json_key, html_key = row.report_json_key, row.report_html_key
    assert json_key is not None and html_key is not None
    document = json.loads(get_store().get(json_key))
    assert document["outcome"]["policy"] == expected
    assert {item["image_id"]: item["outcome"] for item in document["items"]} == {
        a: "released",
        b: "relabel",
    }
    html = get_store().get(html_key).decode()
    assert "<h2>Outcome</h2>" in html
    assert "3 of 5 matching answers" in html
    assert "relabel_failed" in html


def test_a_queue_refuses_a_rule_that_is_no_majority(catalog: str) -> None:
    with pytest.raises(AuditInputError, match=r"relabel_agree must be a majority .* \(3 to 4\)"):
        _world(1, relabel_answers=4, relabel_agree=2)
    with pytest.raises(DataopsError, match="on_reject must be"):
        _world(1, on_reject="shrug")


# --- two rounds through a real Label Studio -------------------------------------------------


def _sync(params: dict[str, Any]) -> dict[str, Any]:
    from dataops.jobs import dispatch

    job = dispatch.submit("sync", params, actor="test:sync")
    assert job.status == "succeeded", job.error
    assert job.result is not None
    return dict(job.result)


def _tasks(batch_id: int) -> tuple[int, dict[int, int]]:
    """The batch's Label Studio project and {task id: image id}."""
    with session_scope() as s:
        batch = s.get_one(Batch, batch_id)
        assert batch.ls_project_id is not None
        rows = s.execute(
            select(BatchItem.ls_task_id, BatchItem.image_id).where(BatchItem.batch_id == batch_id)
        ).all()
        assert all(task_id is not None for task_id, _ in rows)
        return batch.ls_project_id, {int(task_id): image_id for task_id, image_id in rows}


@pytest.mark.slow
@pytest.mark.labelstudio
def test_two_rounds_with_three_labelstudio_annotators(
    pg_catalog: str, labelstudio: LabelStudioInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataops.config import reset_settings

    monkeypatch.setenv("DATAOPS_LABELSTUDIO_URL", labelstudio.url)
    monkeypatch.setenv("DATAOPS_LABELSTUDIO_TOKEN", labelstudio.admin_token)
    monkeypatch.setenv("DATAOPS_PUBLIC_URL", f"http://127.0.0.1:{free_port()}")
    reset_settings()
    third = labelstudio.server.create_user(f"annotator3-{uuid.uuid4().hex[:8]}@dataops.test")
    tokens = [*labelstudio.annotator_tokens, third]
    url = labelstudio.url

    world = _world(4)
    truth = {image_id: CLASSES[n % len(CLASSES)] for n, image_id in enumerate(world.images)}

    def other(cls: str) -> str:
        return CLASSES[(CLASSES.index(cls) + 1) % len(CLASSES)]

    # Round 1: every item asks two answers; the second annotator disagrees on two items.
    first = _batch(world, world.images, status="draft")
    _sync({"action": "push", "batch_id": first})
    project, image_of = _tasks(first)
    tied = set(world.images[2:])

    def second_says(task_id: int) -> str:
        image_id = image_of[task_id]
        return other(truth[image_id]) if image_id in tied else truth[image_id]

    offered = [
        label_stream(url, tokens[0], project, lambda t: truth[image_of[t]]),
        label_stream(url, tokens[1], project, second_says),
        label_stream(url, tokens[2], project, lambda t: truth[image_of[t]]),
    ]
    # Exactly two answers per task: the third account is offered nothing.
    assert [sorted(o) for o in offered] == [sorted(image_of)] * 2 + [[]]
    assert _sync({"action": "pull", "batch_id": first})["created"] == 8
    rejected = _audit(first)
    assert rejected["decision"] == "rejected"
    second = rejected["relabel"]
    assert second is not None
    assert set(_relabel_items(second)) == tied

    # Round 2: three answers per relabel task, one from each account; 2 of 3 agree.
    _sync({"action": "push", "batch_id": second})
    project_again, relabel_image_of = _tasks(second)
    assert project_again == project
    dissent = {task_id: tokens[1 + n % 2] for n, task_id in enumerate(sorted(relabel_image_of))}

    def answer_as(token: str) -> Callable[[int], str]:
        def answer(task_id: int) -> str:
            right = truth[relabel_image_of[task_id]]
            return other(right) if dissent[task_id] == token else right

        return answer

    offered = [label_stream(url, token, project, answer_as(token)) for token in tokens]
    assert [sorted(o) for o in offered] == [sorted(relabel_image_of)] * 3
    # Exactly three: a fourth account is offered nothing.
    fourth = labelstudio.server.create_user(f"annotator4-{uuid.uuid4().hex[:8]}@dataops.test")
    assert label_stream(url, fourth, project, answer_as(fourth)) == []
    assert _sync({"action": "pull", "batch_id": second})["created"] == 6
    accepted = _audit(second)
    assert accepted["decision"] == "accepted"
    assert accepted["relabel"] is None
    assert accepted["metrics"]["outcome"]["relabel_rule"] == "2 of 3 matching answers"

    ends = _ends_accepted_or_released(world.images)
    assert ends == {i: "accepted" if i in tied else "released" for i in world.images}
    with session_scope() as s:
        for image_id in tied:
            label = labeling.accepted_label(s, image_id, TASK)
            assert label is not None
            assert label.payload == {"class": truth[image_id]}


def test_queue_policy_over_http(api: Any) -> None:
    from tests.support.api import bearer, create_user_token

    ops = bearer(create_user_token("labeling_ops"))
    world = _world(1)
    del world
    body = {
        "name": "acme-pets-strict",
        "vendor": "acme",
        "guideline": f"{TASK}:1",
        "on_reject": "release",
        "relabel_answers": 5,
        "relabel_agree": 4,
        "relabel_rounds": 1,
    }
    created = api.post("/v1/queues", json=body, headers=ops)
    assert created.status_code == 201, created.text
    policy = {k: created.json()[k] for k in body if k.startswith(("on_", "relabel_"))}
    assert policy == {k: v for k, v in body.items() if k.startswith(("on_", "relabel_"))}
    # The same name with another policy is another queue: refused.
    changed = api.post("/v1/queues", json={**body, "relabel_agree": 3}, headers=ops)
    assert changed.status_code == 409, changed.text
    assert "2 of 3" not in changed.text and "4 of 5 matching answers" in changed.text
    no_majority = api.post(
        "/v1/queues", json={**body, "name": "other", "relabel_agree": 2}, headers=ops
    )
    assert no_majority.status_code == 400, no_majority.text
    assert "relabel_agree must be a majority of relabel_answers (3 to 5)" in no_majority.text
    unknown = api.post(
        "/v1/queues", json={**body, "name": "other", "on_reject": "shrug"}, headers=ops
    )
    assert unknown.status_code == 422, unknown.text
    assert "on_reject" in unknown.text
