"""Who may call what: every endpoint × every role, against the real app and catalog.

MATRIX has one row per endpoint (method, path, roles allowed). A role that is allowed must
get the row's success status; every other role must get 403 or 404 (404 when an id belongs
to someone else, so ids cannot be probed); no token at all gets the row's `anonymous` status.

Adding a domain: append one Row per route. Paths and string values in `json` are formatted
with the ids of the `world` fixture ({own_image}, {other_image}, {unqueued_image},
{own_queue}, {other_queue}, {job}, {bystander_token}, {ingest_dir}, {group}, {model}, {own_batch},
{audit}, {manifest}, {model_file}, {guideline}) and {role}; add ids to
`world` when a new domain needs them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dataops.config import reset_settings
from tests.support.api import (
    bearer,
    create_user_token,
    ingest_files,
    make_queue,
    write_photo,
)
from tests.support.snapshot import Snapshots

ROLES = ("admin", "scientist", "labeling_ops", "vendor", "auditor")
EVERYONE = frozenset(ROLES)
STAFF = EVERYONE - {"vendor"}
ADMIN = frozenset({"admin"})
NOBODY: frozenset[str] = frozenset()
OPS = frozenset({"admin", "labeling_ops"})
SELECTORS = frozenset({"admin", "scientist", "labeling_ops"})
GUIDELINE_TEXT = (
    "---\nname: made-by-{role}\nkind: classification\nclasses:\n"
    "  - helmet: A safety hard hat.\n  - none: No hard hat in sight.\n---\n\n# Helmets\n"
)


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    allowed: frozenset[str]
    json: dict[str, Any] | None = None
    ok: int = 200
    anonymous: int = 401
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


MATRIX: list[Row] = [
    Row("GET", "/v1/auth/me", EVERYONE),
    Row("GET", "/v1/users", ADMIN),
    Row("POST", "/v1/users", ADMIN, json={"name": "made-by-{role}", "role": "auditor"}, ok=201),
    Row("POST", "/v1/tokens", ADMIN, json={"user": "bystander"}, ok=201),
    Row("GET", "/v1/tokens", EVERYONE),
    # Only admins may revoke someone else's token; for others it does not exist.
    Row("DELETE", "/v1/tokens/{bystander_token}", ADMIN),
    Row("GET", "/v1/images", STAFF),
    Row("GET", "/v1/images/{own_image}", STAFF),
    # Vendors see images only through their tasks' opaque media URLs: a catalog id, even of
    # an image in their own queue, gets them nothing (ids would tell old gold from new work).
    Row("GET", "/v1/images/{own_image}/thumbnail", STAFF),
    Row("GET", "/v1/images/{other_image}/thumbnail", STAFF),
    Row("GET", "/v1/images/{unqueued_image}/thumbnail", STAFF),
    Row("GET", "/v1/images/999999/thumbnail", NOBODY),
    Row(
        "POST",
        "/v1/ingest",
        frozenset({"admin", "scientist"}),
        json={"paths": ["{ingest_dir}"]},
        ok=202,
    ),
    Row("GET", "/v1/jobs", STAFF),
    Row("GET", "/v1/jobs/{job}", STAFF),
    Row("GET", "/v1/jobs/groups", STAFF),
    Row("GET", "/v1/overview", STAFF),
    Row("GET", "/v1/overview/jobs", STAFF),
    Row("GET", "/metrics", STAFF),
    Row("GET", "/healthz", EVERYONE, anonymous=200),
    # A bearer token is never a substitute for a signature.
    Row("GET", "/v1/media/{own_image}", NOBODY, anonymous=403),
    Row("GET", "/v1/media/{own_image}", NOBODY, anonymous=403, params={"queue": "{own_queue}"}),
    Row("GET", "/v1/media/t/" + "0" * 32, NOBODY, anonymous=403),
    Row("GET", "/v1/media/t/" + "0" * 32, NOBODY, anonymous=403, params={"exp": "9999999999"}),
    # Nor for the webhook secret header Label Studio sends.
    Row("GET", "/v1/models", STAFF),
    Row("POST", "/v1/models/{model}/score", frozenset({"admin", "scientist"}), ok=202),
    Row(
        "POST",
        "/v1/models",
        frozenset({"admin", "scientist"}),
        json={
            "name": "made-by-{role}",
            "classes": ["dark", "light", "other"],
            "path": "{model_file}",
        },
        ok=201,
    ),
    Row(
        "POST",
        "/v1/batches",
        frozenset({"admin", "scientist", "labeling_ops"}),
        json={"strategy": "random", "size": 1, "purpose": "cold_start", "task": "default"},
        ok=202,
    ),
    Row("GET", "/v1/batches/{own_batch}", STAFF),
    # A draft: whoever may select may steer it (a sent batch needs labeling ops: see
    # tests/integration/test_batch_lifecycle.py).
    Row("POST", "/v1/batches/{own_batch}/cancel", SELECTORS),
    Row(
        "POST",
        "/v1/batches/{own_batch}/assign",
        SELECTORS,
        json={"queue": "{own_queue}"},
    ),
    Row("POST", "/v1/dedup/run", frozenset({"admin", "scientist"}), json={"radius": 4}, ok=202),
    Row("GET", "/v1/dedup/groups", STAFF),
    Row("GET", "/v1/dedup/groups/{group}", STAFF),
    Row("GET", "/v1/dedup/groups/{group}/contact-sheet", STAFF),
    Row("GET", "/v1/labels", STAFF),
    # Staff start the job (it fails later: this world has one labelled image); vendors 403.
    Row("POST", "/v1/label-quality", STAFF, json={"task": "default"}, ok=202),
    Row("GET", "/v1/label-issues", STAFF, ok=404),  # no run yet: 404 naming the task
    Row(
        "POST",
        "/v1/labels/import",
        frozenset({"admin", "labeling_ops"}),
        json={"format": "csv", "content": "image,annotator,label\n"},
    ),
    Row("GET", "/v1/vendors", STAFF),
    Row("POST", "/v1/vendors", OPS, json={"name": "made-by-{role}"}, ok=201),
    Row("GET", "/v1/guidelines", STAFF),
    Row("GET", "/v1/guidelines/{guideline}", STAFF),
    Row(
        "POST",
        "/v1/guidelines",
        OPS,
        json={"name": "made-by-{role}", "markdown": GUIDELINE_TEXT},
        ok=201,
    ),
    # Vendors list and read only their own queues; guessing another vendor's id gives 404.
    Row("GET", "/v1/queues", EVERYONE),
    Row("GET", "/v1/queues/{own_queue}", EVERYONE),
    Row("GET", "/v1/queues/{other_queue}", STAFF),
    Row("GET", "/v1/queues/{own_queue}/tasks", EVERYONE),
    Row("GET", "/v1/queues/{other_queue}/tasks", STAFF),
    # Progress: vendors read their own queues' (gold and overlap counts null), never drafts.
    Row("GET", "/v1/queue-progress", EVERYONE),
    Row("GET", "/v1/queues/{own_queue}/progress", EVERYONE),
    Row("GET", "/v1/queues/{other_queue}/progress", STAFF),
    Row("GET", "/v1/batches", EVERYONE),
    Row("GET", "/v1/batches", STAFF, params={"queue": "{other_queue}"}),
    Row("GET", "/v1/batches/{own_batch}/items", STAFF),
    Row(
        "POST",
        "/v1/queues",
        OPS,
        json={"name": "made-by-{role}", "vendor": "acme", "guideline": "{guideline}"},
        ok=201,
    ),
    # Label Studio is not configured here, so each accepted sync job fails on its own.
    Row("POST", "/v1/batches/{own_batch}/push", OPS, ok=202),
    Row("POST", "/v1/queues/{own_queue}/pull", OPS, ok=202),
    Row("GET", "/v1/annotators", STAFF),
    # Performance names every vendor's annotators and their gold accuracy: staff only.
    Row("GET", "/v1/annotators/performance", STAFF),
    Row("GET", "/v1/annotators/performance", STAFF, params={"format": "csv", "group": "vendor"}),
    Row("GET", "/v1/annotators/performance.csv", STAFF),
    Row(
        "POST",
        "/v1/annotators",
        OPS,
        json={
            "connection": "default",
            "vendor": "acme",
            "email": "a@acme.example",
            "ls_user_id": 7,
        },
    ),
    Row("GET", "/v1/audits", STAFF),
    Row("GET", "/v1/audits/{audit}", STAFF),
    Row("GET", "/v1/audits/{audit}/report.html", STAFF),
    Row("GET", "/v1/audits/{audit}/disputed", STAFF),
    # The batch has no labels, so each accepted job fails and the batch stays open.
    Row(
        "POST",
        "/v1/audits",
        frozenset({"admin", "labeling_ops"}),
        json={"batch_id": "{own_batch}", "gate": 0.9},
        ok=202,
    ),
    Row("GET", "/v1/manifests", STAFF),
    Row("GET", "/v1/manifests/{manifest}", STAFF),
    Row("GET", "/v1/manifests/{manifest}/datasheet", STAFF),
    Row("GET", "/v1/manifests/{manifest}/leaks", STAFF),
    Row("POST", "/v1/manifests/{manifest}/verify", STAFF),
    Row("POST", "/v1/manifests/{manifest}/verify", STAFF, params={"body_only": "true"}),
    Row(
        "POST",
        "/v1/manifests",
        frozenset({"admin", "scientist"}),
        json={"name": "made-by-{role}", "seed": 1, "splits": "train=0.5,val=0.5"},
        ok=202,
    ),
    Row(
        "POST",
        "/v1/labelstudio/webhook/default",
        NOBODY,
        json={"action": "ANNOTATION_CREATED", "project": {"id": 1}},
        anonymous=403,
    ),
]


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snapshots]:
    """The world is built once per backend; every test starts from its own copy of it."""
    snapshots = Snapshots(tmp_path_factory.mktemp("authz-worlds"))
    yield snapshots
    snapshots.drop()


@pytest.fixture(scope="module")
def world_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("authz-files")


@pytest.fixture
def ingest_root(backend: str, world_files: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One ingest root per backend for the whole module: the world's paths point into it."""
    root = world_files / backend.split(":")[0] / "incoming"
    root.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("DATAOPS_API__INGEST_ROOTS", f'["{root}"]')
    reset_settings()
    return root


@pytest.fixture
def catalog(
    catalog: str, worlds: Snapshots, isolated_env: Path, request: pytest.FixtureRequest
) -> str:
    if "world" in request.fixturenames:
        worlds.restore(catalog, isolated_env)
    return catalog


@pytest.fixture
def world(
    api: TestClient, catalog: str, ingest_root: Path, worlds: Snapshots, isolated_env: Path
) -> dict[str, Any]:
    """Two vendors with a queue each, an unqueued image, a finished job, a bystander's token."""
    from dataops.jobs import dispatch

    taken = worlds.get(catalog)
    if taken is not None:
        return dict(taken.context)
    photos = [write_photo(ingest_root.parent / "photos" / f"p{i}.jpg", seed=i) for i in range(3)]
    own, other, unqueued = ingest_files(photos)
    write_photo(ingest_root / "new.jpg", seed=99)
    job = dispatch.submit("ingest", {"paths": [str(ingest_root)]}, actor="test")
    bystander = create_user_token("auditor", name="bystander")
    tokens = {
        role: create_user_token(role, vendor="acme" if role == "vendor" else None) for role in ROLES
    }
    own_queue = make_queue("acme", [own])
    context = {
        "audit": audit_with_report(),
        "manifest": manifest_of(own),
        "group": _dup_group([own, unqueued]),
        "model": _model_version(),
        "own_batch": _batch_of(own_queue),
        "own_image": own,
        "other_image": other,
        "unqueued_image": unqueued,
        "own_queue": own_queue,
        "guideline": _guideline_of(own_queue),
        "other_queue": make_queue("globex", [other]),
        "job": job.id,
        "bystander_token": bystander.split("_")[1],
        "ingest_dir": str(ingest_root),
        "model_file": _model_file(ingest_root / "models"),
        "tokens": tokens,
    }
    worlds.take(catalog, isolated_env, context)
    return dict(context)


def audit_with_report() -> int:
    """An audit row whose JSON and HTML reports are in the blob store."""
    from dataops.audits.models import Audit
    from dataops.db import session_scope
    from dataops.storage import get_store

    store = get_store()
    json_key = store.put_named("audits/matrix/report.json", b'{"decision": "accepted"}')
    html_key = store.put_named("audits/matrix/report.html", b"<html><body>audit</body></html>")
    with session_scope() as session:
        audit = Audit(
            gate=0.9,
            pass_rate=1.0,
            decision="accepted",
            metrics={"gate": {"n_items": 1, "n_passed": 1}, "counts": {"disputed": 0}},
            report_json_key=json_key,
            report_html_key=html_key,
            created_by="test",
        )
        session.add(audit)
        session.flush()
        return audit.id


def manifest_of(image_id: int, name: str = "matrix-v1") -> str:
    """A manifest over one image, after giving it an accepted label."""
    from dataops.db import session_scope
    from dataops.labeling.models import ACCEPTED
    from dataops.labeling.service import add_label_version
    from dataops.manifests.create import create_manifest
    from dataops.manifests.schemas import ManifestRequest

    with session_scope() as session:
        add_label_version(
            session,
            image_id=image_id,
            payload={"class": "helmet"},
            source="csv",
            source_id=f"matrix-{image_id}",
            status=ACCEPTED,
        )
    with session_scope() as session:
        return create_manifest(session, ManifestRequest(name=name), actor="test").name


def _dup_group(image_ids: list[int]) -> int:
    from sqlalchemy import update

    from dataops.catalog.models import Image
    from dataops.db import session_scope
    from dataops.dedup.models import DupGroup

    with session_scope() as session:
        group = DupGroup(representative_id=image_ids[0], size=len(image_ids), methods="phash")
        session.add(group)
        session.flush()
        session.execute(update(Image).where(Image.id.in_(image_ids)).values(dup_group_id=group.id))
        return group.id


def _model_version() -> str:
    from dataops.db import session_scope
    from dataops.scoring.models import ModelVersion

    with session_scope() as session:
        session.add(
            ModelVersion(
                name="matrix",
                version=1,
                sha256="0" * 64,
                blob_key="00/" + "0" * 64,
                classes=["a", "b"],
                input_spec={"size": [8, 8], "mean": [0.0], "std": [1.0], "channels": 1},
                is_current=True,
            )
        )
    return "matrix"


def _model_file(folder: Path) -> str:
    """A TorchScript file with its input spec, inside the ingest root."""
    from tests.support import brightness_model

    folder.mkdir(parents=True, exist_ok=True)
    return str(brightness_model.export(folder / "brightness.pt"))


def _batch_of(queue_id: int) -> int:
    from sqlalchemy import select

    from dataops.db import session_scope
    from dataops.selection.models import Batch

    with session_scope() as session:
        return int(session.scalars(select(Batch.id).where(Batch.queue_id == queue_id)).one())


def _guideline_of(queue_id: int) -> str:
    from dataops.db import session_scope
    from dataops.labeling.models import Guideline, Queue

    with session_scope() as session:
        queue = session.get(Queue, queue_id)
        assert queue is not None
        guideline = session.get(Guideline, queue.guideline_id)
        assert guideline is not None
        return guideline.name


def _fill(value: Any, ctx: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return value.format(**ctx)
    if isinstance(value, list):
        return [_fill(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ctx) for k, v in value.items()}
    return value


def _call(api: TestClient, row: Row, ctx: dict[str, Any], token: str | None) -> int:
    response = api.request(
        row.method,
        _fill(row.path, ctx),
        json=_fill(row.json, ctx),
        params=_fill(row.params, ctx),
        headers=bearer(token) if token else {},
    )
    if response.status_code >= 400:
        assert set(response.json()) == {"error"}, response.text
    return response.status_code


@pytest.mark.parametrize(
    "row", MATRIX, ids=[r.id + ("?" + ",".join(r.params) if r.params else "") for r in MATRIX]
)
def test_role_matrix(api: TestClient, world: dict[str, Any], row: Row) -> None:
    mismatches = []
    anonymous = _call(api, row, {**world, "role": "anonymous"}, None)
    if anonymous != row.anonymous:
        mismatches.append(f"anonymous: got {anonymous}, want {row.anonymous}")
    for role in ROLES:
        status = _call(api, row, {**world, "role": role}, world["tokens"][role])
        if role in row.allowed and status != row.ok:
            mismatches.append(f"{role}: got {status}, want {row.ok}")
        if role not in row.allowed and status not in (403, 404):
            mismatches.append(f"{role}: got {status}, want 403 or 404")
    assert not mismatches, f"{row.id}: " + "; ".join(mismatches)


def test_matrix_covers_every_route(api: TestClient) -> None:
    """A new route without a row fails here, so nobody forgets to decide who may call it."""
    rows = {(r.method, re.sub(r"\{[a-z_]+\}", "x", r.path)) for r in MATRIX}
    missing = []
    for template, item in api.get("/openapi.json").json()["paths"].items():
        pattern = re.compile(re.sub(r"\\\{[A-Za-z_]+\\\}", "[^/]+", re.escape(template)))
        for method in (m.upper() for m in item):
            if not any(m == method and pattern.fullmatch(path) for m, path in rows):
                missing.append(f"{method} {template}")
    assert missing == []


def test_vendor_scope_of_queues(api: TestClient, world: dict[str, Any]) -> None:
    """The helper other routers use: a vendor sees its own queue, another vendor's is 404."""
    from dataops.api.deps import VendorScope
    from dataops.db import session_scope
    from dataops.errors import NotFound
    from dataops.labeling.models import Vendor

    with session_scope() as session:
        acme = session.query(Vendor).filter_by(name="acme").one().id
        scope = VendorScope(vendor_id=acme)
        scope.check_queue(session, world["own_queue"])
        with pytest.raises(NotFound):
            scope.check_queue(session, world["other_queue"])
        VendorScope(vendor_id=None).check_queue(session, world["other_queue"])
