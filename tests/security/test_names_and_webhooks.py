"""Look-alike names are refused, and a webhook deletes only its own project's annotations.

Names: vendors, queues, users, guidelines and manifests are compared by their UTS #39
confusable skeleton, so ``аcme`` (Cyrillic а) or ``асме`` (all Cyrillic) cannot be created
beside ``acme``. Webhooks: the secret is per Label Studio connection, so a deletion naming one
project must not mark another project's annotations on the same connection.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from dataops.db import session_scope
from dataops.labeling import service as labeling
from dataops.labeling.models import DELETED, LabelVersion, Queue
from dataops.names import LookAlikeName, looks_like
from dataops.selection.models import Batch
from tests.support.api import (
    MakeUser,
    bearer,
    create_user_token,
    ingest_files,
    make_queue,
    write_photo,
)

CYRILLIC_A = "\u0430cme"  # а + "cme"
ALL_CYRILLIC = "\u0430\u0441\u043c\u0435"  # асме
GUIDELINE = """---
name: {name}
kind: classification
classes:
  - helmet: Worn on the head.
  - bare: Nothing on the head.
---

# {name}
"""


@pytest.mark.parametrize(
    ("name", "other"),
    [
        ("acme", CYRILLIC_A),
        ("acme", ALL_CYRILLIC),
        ("acme", "ACME"),
        ("acme", "\uff41\uff43\uff4d\uff45"),  # full-width
        ("acme", "a\u200bcme"),  # zero-width space
        ("modern", "rnodern"),
        ("helmets", "he1mets"),
    ],
)
def test_look_alikes_share_a_skeleton(name: str, other: str) -> None:
    assert looks_like(name, other)


@pytest.mark.parametrize(("name", "other"), [("acme", "acne"), ("vendor-a", "vendor-b")])
def test_different_names_do_not(name: str, other: str) -> None:
    assert not looks_like(name, other)


def test_vendor_look_alikes_are_refused_over_http(api: TestClient, make_user: MakeUser) -> None:
    ops = bearer(make_user("labeling_ops"))
    assert api.post("/v1/vendors", json={"name": "acme"}, headers=ops).status_code == 201
    for name in (CYRILLIC_A, ALL_CYRILLIC, "ACME"):
        response = api.post("/v1/vendors", json={"name": name}, headers=ops)
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert error["code"] == "name_looks_alike"
        assert "'acme'" in error["message"]
    # The same name stays idempotent, and a name that reads differently is fine.
    assert api.post("/v1/vendors", json={"name": "acme"}, headers=ops).status_code == 200
    assert api.post("/v1/vendors", json={"name": "acne"}, headers=ops).status_code == 201


def test_user_look_alikes_are_refused_over_http(api: TestClient, make_user: MakeUser) -> None:
    admin = bearer(make_user("admin"))
    body = {"name": "alice", "role": "scientist"}
    assert api.post("/v1/users", json=body, headers=admin).status_code == 201
    for name in ("a1ice", "ALICE"):
        response = api.post("/v1/users", json={**body, "name": name}, headers=admin)
        assert response.status_code == 409, response.text
        assert "'alice'" in response.json()["error"]["message"]


def test_queue_and_guideline_look_alikes_are_refused(catalog: str) -> None:
    with session_scope() as s:
        labeling.create_vendor(s, "acme")
        labeling.publish_guideline_text(s, GUIDELINE.format(name="helmets"))
        labeling.create_queue(s, "acme-queue", vendor="acme", guideline="helmets")
    with session_scope() as s, pytest.raises(LookAlikeName, match="'acme-queue'"):
        labeling.create_queue(s, f"{ALL_CYRILLIC}-queue", vendor="acme", guideline="helmets")
    with session_scope() as s, pytest.raises(LookAlikeName, match="'helmets'"):
        labeling.publish_guideline_text(s, GUIDELINE.format(name="he1mets"))
    # A new version of the same guideline is not a look-alike of itself.
    with session_scope() as s:
        _, created = labeling.publish_guideline_text(s, GUIDELINE.format(name="helmets") + "\nv2\n")
        assert created


def test_manifest_look_alikes_are_refused(catalog: str, corpus: Path, tmp_path: Path) -> None:
    from dataops.labeling.models import ACCEPTED
    from dataops.manifests.create import create_manifest
    from dataops.manifests.schemas import ManifestRequest

    folder = tmp_path / "photos"
    folder.mkdir()
    for src in sorted((corpus / "clothing-dataset").glob("*.jpg"))[:4]:
        shutil.copy(src, folder / src.name)
    for i, image_id in enumerate(ingest_files(sorted(folder.iterdir()))):
        with session_scope() as s:
            labeling.add_label_version(
                s,
                image_id=image_id,
                payload={"class": "helmet" if i % 2 else "bare"},
                source="csv",
                source_id=f"row-{i}",
                status=ACCEPTED,
            )
    with session_scope() as s:
        create_manifest(s, ManifestRequest(name="train-v1"), actor="test")
    with session_scope() as s, pytest.raises(LookAlikeName, match="'train-v1'"):
        create_manifest(s, ManifestRequest(name="train-vl"), actor="test")


# --- webhook deletions ----------------------------------------------------------------------


def _project_with_annotation(tmp_path: Path, vendor: str, project: int, annotation: int) -> int:
    """A queue on the default connection with Label Studio project `project` and one stored
    annotation; returns the queue id."""
    photo = write_photo(tmp_path / f"{vendor}.jpg", seed=project)
    [image_id] = ingest_files([photo])
    queue_id = make_queue(vendor, [image_id])
    with session_scope() as s:
        s.execute(update(Queue).where(Queue.id == queue_id).values(ls_project_id=project))
        batch_id = s.scalar(select(Batch.id).where(Batch.queue_id == queue_id))
        labeling.add_label_version(
            s,
            image_id=image_id,
            payload={"class": "helmet"},
            source=labeling.SOURCE_LABELSTUDIO,
            source_id=labeling.labelstudio_source_id("default", annotation),
            batch_id=batch_id,
        )
    return queue_id


def _deleted(annotation: int) -> bool:
    with session_scope() as s:
        return bool(
            s.scalar(
                select(LabelVersion.id).where(
                    LabelVersion.source_id == labeling.labelstudio_source_id("default", annotation),
                    LabelVersion.status == DELETED,
                )
            )
        )


def test_webhook_deletes_only_annotations_of_its_project(api: TestClient, tmp_path: Path) -> None:
    from dataops.labelstudio.webhooks import WEBHOOK_HEADER, webhook_secret

    create_user_token("admin")  # the catalog's first user; not used by the webhook
    ours = _project_with_annotation(tmp_path, "vendor-one", project=11, annotation=501)
    _project_with_annotation(tmp_path, "vendor-two", project=22, annotation=502)
    headers = {WEBHOOK_HEADER: webhook_secret("default")}

    def delete(project: int, *annotations: int) -> dict[str, object]:
        payload = {
            "action": "ANNOTATIONS_DELETED",
            "project": {"id": project},
            "annotations": [{"id": a} for a in annotations],
        }
        response = api.post("/v1/labelstudio/webhook/default", json=payload, headers=headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    # Project 11's secret is the connection's: it names project 22's annotation.
    result = delete(11, 502)
    assert (result["queue_id"], result["deleted"]) == (ours, 0)
    assert not _deleted(502)
    # Its own annotation is recorded as deleted, the other one in the same payload is not.
    result = delete(11, 501, 502)
    assert result["deleted"] == 1
    assert _deleted(501)
    assert not _deleted(502)
