"""Vendors, guidelines, queues, annotators and label-version chains on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dataops.catalog.ingest import ingest
from dataops.catalog.models import Image
from dataops.config import reset_settings
from dataops.db import session_scope
from dataops.errors import Conflict, DataopsError
from dataops.events.models import Event
from dataops.labeling import annotators, guideline_versions, labels, queues, service, vendors
from dataops.labeling.errors import (
    AnnotatorConflict,
    InvalidLabel,
    QueuePinned,
    QueueSettingsError,
)
from dataops.labeling.models import Guideline, LabelVersion, Queue
from dataops.labeling.schemas import AnnotatorMap
from tests.support.cli import run_cli, run_json

GUIDELINES = Path(__file__).resolve().parents[2] / "guidelines"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _image_ids(image_dir: Path, n: int = 3) -> list[int]:
    ingest([str(image_dir)], transaction=session_scope)
    with session_scope() as s:
        return list(
            s.scalars(select(Image.id).where(Image.status == "ok").order_by(Image.id).limit(n))
        )


def _publish(path: Path) -> tuple[int, int, bool]:
    with session_scope() as s:
        g, created = guideline_versions.publish_guideline(s, path, actor="ops")
        return g.id, g.version, created


def _events(action: str) -> list[Event]:
    with session_scope() as s:
        return list(s.scalars(select(Event).where(Event.action == action)))


def test_guideline_publish_is_idempotent_and_versions_changes(catalog: str, tmp_path: Path) -> None:
    draft = tmp_path / "v1.md"
    shutil.copy(GUIDELINES / "clothing" / "v1.md", draft)
    first = _publish(draft)
    assert first[1:] == (1, True)
    assert _publish(draft) == (first[0], 1, False)

    draft.write_text(draft.read_text() + "\nClarified: a knit with a zip is Outwear.\n")
    second = _publish(draft)
    assert second[1:] == (2, True)
    shutil.copy(GUIDELINES / "clothing" / "v1.md", draft)
    assert _publish(draft) == (first[0], 1, False)  # the old bytes are still version 1

    with session_scope() as s:
        assert guideline_versions.get_guideline(s, "clothing").version == 2
        assert guideline_versions.get_guideline(s, "clothing:1").id == first[0]
        assert guideline_versions.get_guideline(s, "clothing:v2").id == second[0]
        v1 = s.get(Guideline, first[0])
        assert v1 is not None
        assert guideline_versions.get_guideline(s, v1.sha256[:10]).id == first[0]
        assert "Choices" in v1.label_config
        assert v1.classes[0] == "T-Shirt"
        with pytest.raises(DataopsError, match="no guideline"):
            guideline_versions.get_guideline(s, "clothing:3")
    published = _events("guideline.published")
    assert len(published) == 2
    assert {e.actor for e in published} == {"ops"}


def test_queue_settings_are_validated_and_the_guideline_is_pinned(
    catalog: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    draft = tmp_path / "v1.md"
    shutil.copy(GUIDELINES / "clothing" / "v1.md", draft)
    _publish(draft)
    draft.write_text(draft.read_text() + "\nv2\n")
    _publish(draft)
    with session_scope() as s:
        vendors.create_vendor(s, "acme", actor="ops")
    bad = [
        ({"overlap": 20.0}, "fraction"),
        ({"overlap": -0.1}, "overlap must be between 0 and 1"),
        ({"gold": 0.6}, "gold must be between 0 and 0.5"),
        ({"due": "0d"}, "due '0d' must be more than 0"),
        ({"connection": "vendorb"}, "DATAOPS_LABELSTUDIO_CONNECTIONS__VENDORB__URL"),
    ]
    for options, needle in bad:
        with session_scope() as s, pytest.raises(QueueSettingsError, match=needle):
            service.create_queue(s, "q", vendor="acme", guideline="clothing:1", **options)
    assert queues.parse_due("3d") == 3.0
    assert queues.parse_due("12h") == 0.5
    assert queues.parse_due("2w") == 14.0
    with pytest.raises(QueueSettingsError, match="duration"):
        queues.parse_due("soon")

    monkeypatch.setenv("DATAOPS_LABELSTUDIO_CONNECTIONS__vendorb__URL", "http://127.0.0.1:9")
    monkeypatch.setenv("DATAOPS_LABELSTUDIO_CONNECTIONS__vendorb__TOKEN", "t" * 40)
    reset_settings()
    with session_scope() as s:
        queue, created = service.create_queue(
            s,
            "acme-clothing",
            vendor="acme",
            guideline="clothing:1",
            overlap=0.2,
            gold=0.05,
            due="3d",
            connection="VendorB",  # env names arrive lower-cased
            actor="ops",
        )
        assert created
        assert queue.connection == "vendorb"
        queue_id = queue.id
    with session_scope() as s:
        again, created = service.create_queue(
            s,
            "acme-clothing",
            vendor="acme",
            guideline="clothing:1",
            overlap=0.2,
            gold=0.05,
            due="3d",
            connection="vendorb",
        )
        assert (again.id, created) == (queue_id, False)
        with pytest.raises(QueuePinned, match="new queue"):
            service.create_queue(s, "acme-clothing", vendor="acme", guideline="clothing")
        with pytest.raises(Conflict, match="other settings"):
            service.create_queue(
                s, "acme-clothing", vendor="acme", guideline="clothing:1", connection="vendorb"
            )
        pinned = s.get(Queue, queue_id)
        assert pinned is not None
        with pytest.raises(QueuePinned):
            pinned.guideline_id = guideline_versions.get_guideline(s, "clothing:2").id
        out = queues.queue_out(s, pinned)
        assert (out.guideline, out.vendor, out.kind) == ("clothing:1", "acme", "classification")
    assert [e.actor for e in _events("queue.created")] == ["ops"]


def test_annotator_mapping(catalog: str) -> None:
    with session_scope() as s:
        acme, _ = vendors.create_vendor(s, "acme")
        other, _ = vendors.create_vendor(s, "other")
        acme_id, other_id = acme.id, other.id
        # First seen in a label file, by email only.
        from_file = annotators.get_or_create_annotator(
            s,
            connection=None,
            ls_user_id=None,
            email="Ann@Acme.com",
            vendor_id=acme_id,
            mapped_by="import",
            name="Ann@Acme.com",
        )
        mapped = annotators.map_annotator(
            s,
            AnnotatorMap(connection="default", vendor="acme", email="ann@acme.com", ls_user_id=7),
            actor="ops",
        )
        assert mapped.id == from_file.id
        assert (mapped.connection, mapped.ls_user_id, mapped.mapped_by) == ("default", 7, "manual")
        pulled = annotators.get_or_create_annotator(
            s,
            connection="default",
            ls_user_id=7,
            email=None,
            vendor_id=acme_id,
            mapped_by="ls_user_id",
        )
        assert pulled.id == mapped.id
        # A new Label Studio user seen on a pull gets its own annotator.
        newcomer = annotators.get_or_create_annotator(
            s,
            connection="default",
            ls_user_id=8,
            email=None,
            vendor_id=acme_id,
            mapped_by="ls_user_id",
        )
        assert newcomer.id != mapped.id
        assert newcomer.name == "default:8"
        with pytest.raises(AnnotatorConflict, match="one vendor"):
            annotators.get_or_create_annotator(
                s,
                connection="default",
                ls_user_id=7,
                email=None,
                vendor_id=other_id,
                mapped_by="ls_user_id",
            )
        with pytest.raises(AnnotatorConflict, match="already mapped"):
            annotators.map_annotator(
                s,
                AnnotatorMap(
                    connection="default", vendor="acme", email="ann@acme.com", ls_user_id=9
                ),
            )
        with pytest.raises(AnnotatorConflict, match="already mapped"):
            annotators.map_annotator(
                s,
                AnnotatorMap(
                    connection="default", vendor="acme", email="bob@acme.com", ls_user_id=7
                ),
            )
        with pytest.raises(QueueSettingsError, match="unknown Label Studio connection"):
            annotators.map_annotator(
                s,
                AnnotatorMap(connection="nowhere", vendor="acme", email="c@acme.com", ls_user_id=3),
            )
        listed = annotators.list_annotators(s, vendor="acme")
        assert [a.mapped_by for a in listed] == ["manual", "ls_user_id"]
    assert any(e.details.get("ls_user_id") == 7 for e in _events("annotator.mapped"))


def test_label_versions_supersede_and_are_idempotent(catalog: str, image_dir: Path) -> None:
    image_id, other_image = _image_ids(image_dir, 2)
    with session_scope() as s:
        a1 = annotators.get_or_create_annotator(
            s,
            connection="default",
            ls_user_id=1,
            email=None,
            vendor_id=None,
            mapped_by="ls_user_id",
        ).id
        a2 = annotators.get_or_create_annotator(
            s,
            connection="default",
            ls_user_id=2,
            email=None,
            vendor_id=None,
            mapped_by="ls_user_id",
        ).id
    source_id = labels.labelstudio_source_id("default", 41)

    def add(when: datetime | str, label: str, annotator: int = a1, sid: str = source_id):  # type: ignore[no-untyped-def]
        with session_scope() as s:
            v, created = labels.add_label_version(
                s,
                image_id=image_id,
                payload={"class": label},
                source="labelstudio",
                source_id=sid,
                source_updated_at=when,
                annotator_id=annotator,
                task="clothing",
                actor="sync",
            )
            return v.id, created, v.supersedes_id

    first = add(T0, "Dress")
    assert first[1:] == (True, None)
    assert add("2026-03-01T09:00:00Z", "Dress") == (first[0], False, None)
    edit = add(T0 + timedelta(minutes=5), "Skirt")
    assert edit[1:] == (True, first[0])
    stale = add(T0 - timedelta(minutes=5), "Pants")
    assert stale[:2] == (edit[0], False)
    other = add(T0, "Dress", annotator=a2, sid=labels.labelstudio_source_id("default", 42))
    assert other[2] is None  # another annotator has its own chain

    with session_scope() as s:
        live = labels.live_versions(s, image_ids=[image_id], task="clothing")
        assert sorted(v.id for v in live) == sorted([edit[0], other[0]])
        assert labels.accepted_label(s, image_id, "clothing") is None
        with pytest.raises(Conflict, match="superseded"):
            labels.set_status(s, first[0], "accepted")
        with pytest.raises(InvalidLabel, match="status"):
            labels.set_status(s, edit[0], "deleted")
        labels.set_status(s, edit[0], "accepted", actor="auditor", reason="matches gold")
        assert labels.accepted_label(s, image_id, "clothing").id == edit[0]  # type: ignore[union-attr]
        labels.set_status(s, other[0], "adjudicated", actor="auditor")
        assert labels.accepted_label(s, image_id, "clothing").id == other[0]  # type: ignore[union-attr]
        # The same rule as SQL over every image, as manifests freeze it.
        chosen = s.execute(labels.accepted_labels("clothing").cte("chosen").select()).all()
        assert [tuple(row) for row in chosen] == [(image_id, other[0])]
        assert s.execute(labels.accepted_labels("other-task")).all() == []

    with session_scope() as s:
        deletion, created = labels.mark_deleted(
            s, source="labelstudio", source_id=source_id, actor="webhook"
        )
        assert created
        assert deletion is not None
        assert deletion.supersedes_id == edit[0]
        again, created = labels.mark_deleted(s, source="labelstudio", source_id=source_id)
        assert not created
        assert again is not None
        assert again.id == deletion.id
        assert labels.mark_deleted(s, source="labelstudio", source_id="default:999") == (
            None,
            False,
        )
        live = labels.live_versions(s, image_ids=[image_id], task="clothing")
        assert [v.id for v in live] == [other[0]]
        with pytest.raises(Conflict):
            labels.set_status(s, deletion.id, "accepted")
        # Nothing was erased: the whole chain is still there.
        chain = labels.list_labels(s, image_id=image_id)
        assert [v.status for v in chain] == [
            "submitted",
            "accepted",
            "adjudicated",
            "deleted",
        ]
        assert s.scalar(select(func.count()).select_from(LabelVersion)) == 4
        assert labels.list_labels(s, image_id=other_image) == []
    status_events = _events("label.status")
    assert [(e.actor, e.details["to"]) for e in status_events] == [
        ("auditor", "accepted"),
        ("auditor", "adjudicated"),
    ]
    assert status_events[0].details["reason"] == "matches gold"
    assert len(_events("label.added")) == 3


def test_label_payloads_are_checked_against_the_guideline(catalog: str, image_dir: Path) -> None:
    [image_id] = _image_ids(image_dir, 1)
    guideline_id, _, _ = _publish(GUIDELINES / "ppe-detection" / "v1.md")
    box = {"class": "Helmet", "x": 0.25, "y": 0.1, "w": 0.2, "h": 0.15}
    with session_scope() as s:
        v, _ = labels.add_label_version(
            s,
            image_id=image_id,
            payload={"boxes": [box]},
            source="csv",
            source_id="one",
            guideline_id=guideline_id,
            task="ppe",
        )
        assert v.payload == {"boxes": [{**box, "class": "helmet"}]}
        for payload, needle in [
            ({"class": "person"}, "detection"),
            ({"boxes": [{**box, "class": "glove"}]}, "not a class"),
            ({"boxes": [{**box, "w": 0.9}]}, "outside"),
        ]:
            with pytest.raises(InvalidLabel, match=needle):
                labels.add_label_version(
                    s,
                    image_id=image_id,
                    payload=payload,
                    source="csv",
                    source_id="two",
                    guideline_id=guideline_id,
                )
        with pytest.raises(DataopsError, match="no image"):
            labels.add_label_version(
                s, image_id=10**6, payload={"class": "a"}, source="csv", source_id="x"
            )


def test_cli_vendors_guidelines_queues_annotators(catalog: str, tmp_path: Path) -> None:
    assert run_json("vendors", "create", "acme")["created"] is True
    assert run_json("vendors", "create", "acme")["created"] is False
    published = run_json("guidelines", "publish", str(GUIDELINES / "digits" / "v1.md"))
    assert (published["ref"], published["created"]) == ("digits:1", True)
    again = run_json("guidelines", "publish", str(GUIDELINES / "digits" / "v1.md"))
    assert (again["sha256"], again["created"]) == (published["sha256"], False)
    shown = run_json("guidelines", "show", "digits:1")
    assert shown["classes"] == [str(n) for n in range(10)]
    assert "<Choices" in shown["label_config"]
    assert [g["ref"] for g in run_json("guidelines", "list")["guidelines"]] == ["digits:1"]

    queue = run_json(
        "queues",
        "create",
        "acme-digits",
        "--vendor",
        "acme",
        "--guideline",
        "digits",
        "--overlap",
        "0.2",
        "--gold",
        "0.05",
        "--due",
        "3d",
    )
    assert (queue["guideline"], queue["due_days"], queue["connection"]) == (
        "digits:1",
        3.0,
        "default",
    )
    assert run_json("queues", "show", "acme-digits")["id"] == queue["id"]
    assert [q["name"] for q in run_json("queues", "list")["queues"]] == ["acme-digits"]
    bad = run_cli(
        "queues",
        "create",
        "q2",
        "--vendor",
        "acme",
        "--guideline",
        "digits",
        "--gold",
        "2",
        check=False,
    )
    assert bad.returncode == 2
    assert "--gold" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = run_cli(
        "queues", "create", "q3", "--vendor", "nobody", "--guideline", "digits", check=False
    )
    assert missing.returncode == 2
    assert "no vendor" in missing.stderr

    mapped = run_json(
        "annotators",
        "map",
        "--connection",
        "default",
        "--vendor",
        "acme",
        "--email",
        "ann@acme.com",
        "--ls-user-id",
        "5",
    )
    assert (mapped["ls_user_id"], mapped["vendor"], mapped["mapped_by"]) == (5, "acme", "manual")
    assert [a["email"] for a in run_json("annotators", "list")["annotators"]] == ["ann@acme.com"]
    vendors = run_json("vendors", "list")["vendors"]
    assert [(v["name"], v["queues"], v["annotators"]) for v in vendors] == [("acme", 1, 1)]
