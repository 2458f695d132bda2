"""Label Studio sync throughput: our paged, idempotent push and incremental pull against a local
server, next to one naive SDK import of the same tasks.

    .venv/bin/python benchmarks/labelstudio.py [--tasks 1000] [--page-size 100]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench]

The server is a private Label Studio 1.23.2 started by the test harness (copied template data
dir, SQLite); the SDK is imported before anything is timed. The catalog is synthetic (image rows and one prediction each; image bytes are
never fetched by a push), embedded SQLite unless --database-url points at an empty database.

- push: `push.push_batch` — per page of N tasks, a look-up of the page's item keys, one import of
  the missing tasks with a prediction each, one committed transaction recording the task ids.
- naive: `projects.import_tasks` of the same tasks in one request, straight through the SDK,
  into a fresh project (no key look-up, nothing recorded: a retry would duplicate everything).
- pull: `pull.pull` of every task after two annotators labeled each one through the API
  (2 annotations per task), storing one label version per annotation.
- re-push / re-pull: the same calls again, which must create nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLASSES = ["T-Shirt", "Pants", "Shoes", "Dress"]


def build_catalog(n: int) -> tuple[int, int]:
    """A queue with overlap on every item, a scored synthetic catalog and a draft batch."""
    from dataops.catalog.models import Image
    from dataops.db import session_scope
    from dataops.labeling import service as labeling
    from dataops.labeling.models import Guideline
    from dataops.labelstudio.config import label_config
    from dataops.scoring.models import ModelVersion, Prediction
    from dataops.selection.models import Batch, BatchItem

    with session_scope() as session:
        labeling.create_vendor(session, "bench-vendor")
        session.add(
            Guideline(
                name="bench",
                version=1,
                sha256=hashlib.sha256(b"bench guideline").hexdigest(),
                kind="classification",
                classes=CLASSES,
                body="Benchmark guideline.",
                label_config=label_config("classification", CLASSES),
            )
        )
        session.flush()
        queue, _ = labeling.create_queue(
            session, "bench-queue", vendor="bench-vendor", guideline="bench:1", overlap=1.0
        )
        model = ModelVersion(
            name="bench-model",
            version=1,
            sha256="c" * 64,
            blob_key="c" * 64,
            classes=CLASSES,
            input_spec={},
        )
        images = [
            Image(sha256=hashlib.sha256(f"image-{i}".encode()).hexdigest(), uri=f"/bench/{i}.jpg")
            for i in range(n)
        ]
        session.add_all([model, *images])
        session.flush()
        batch = Batch(
            purpose="active_learning",
            strategy="least_confidence",
            seed=1,
            model_version_id=model.id,
            queue_id=queue.id,
            size=n,
            overlap=1.0,
        )
        session.add(batch)
        session.flush()
        for position, image in enumerate(images):
            session.add(
                Prediction(
                    model_version_id=model.id,
                    image_id=image.id,
                    probs=[0.4, 0.3, 0.2, 0.1],
                    predicted_class=CLASSES[position % len(CLASSES)],
                    predicted_score=0.4,
                    least_confidence=0.6,
                    margin=0.1,
                    entropy=1.28,
                )
            )
            session.add(
                BatchItem(
                    batch_id=batch.id,
                    image_id=image.id,
                    item_key=hashlib.sha256(f"bench:{image.id}".encode()).hexdigest(),
                    position=position,
                )
            )
        return batch.id, queue.id


def naive_import(url: str, token: str, tasks: list[dict[str, Any]]) -> float:
    from label_studio_sdk import LabelStudio

    from dataops.labelstudio.config import label_config

    sdk = LabelStudio(base_url=url, api_key=token, timeout=600)
    project = sdk.projects.create(
        title="naive import", label_config=label_config("classification", CLASSES)
    )
    assert project.id is not None
    start = time.perf_counter()
    response = sdk.projects.import_tasks(id=project.id, request=tasks, return_task_ids=True)
    elapsed = time.perf_counter() - start
    assert len(getattr(response, "task_ids", [])) == len(tasks)
    return elapsed


def annotate(url: str, tokens: list[str], task_ids: list[int], per_annotator: int) -> float:
    """Every annotator labels every task, with a few threads per annotator."""
    from dataops.labelstudio.client import LabelStudioClient, prediction_result

    errors: list[BaseException] = []

    def work(token: str, label: str, share: list[int]) -> None:
        try:
            with LabelStudioClient(url, token) as client:
                for task_id in share:
                    client.create_annotation(
                        task_id, prediction_result("classification", label=label)
                    )
        except BaseException as exc:
            errors.append(exc)

    start = time.perf_counter()
    threads = [
        threading.Thread(
            target=work,
            args=(token, CLASSES[n % len(CLASSES)], task_ids[part::per_annotator]),
        )
        for n, token in enumerate(tokens)
        for part in range(per_annotator)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    from dataops.config import reset_settings
    from dataops.db import dispose_engines, session_scope
    from dataops.labelstudio.client import LabelStudioClient
    from dataops.labelstudio.pull import pull
    from dataops.labelstudio.push import push_batch
    from dataops.labelstudio.schemas import PullRequest, PushRequest
    from dataops.migrate import upgrade
    from tests.support.labelstudio import LabelStudioServer

    rows: list[tuple[str, int, float]] = []
    with tempfile.TemporaryDirectory() as tmp, LabelStudioServer.from_template() as server:
        os.environ["DATAOPS_DATA_DIR"] = tmp
        if args.database_url:
            os.environ["DATAOPS_DATABASE_URL"] = args.database_url
        else:
            os.environ.pop("DATAOPS_DATABASE_URL", None)
        os.environ["DATAOPS_LABELSTUDIO_URL"] = server.url
        os.environ["DATAOPS_LABELSTUDIO_TOKEN"] = server.admin_token
        reset_settings()
        upgrade()
        tokens = [server.create_user(f"bench{n}@dataops.test") for n in (1, 2)]
        batch_id, queue_id = build_catalog(args.tasks)
        # Importing the SDK costs seconds once per process; keep it out of every timing.
        LabelStudioClient.connect(server.url, server.admin_token).close()

        start = time.perf_counter()
        pushed = push_batch(
            PushRequest(batch_id=batch_id, page_size=args.page_size), transaction=session_scope
        )
        rows.append(
            (
                f"push (paged {args.page_size}, idempotent)",
                pushed["created"],
                time.perf_counter() - start,
            )
        )
        start = time.perf_counter()
        again = push_batch(
            PushRequest(batch_id=batch_id, page_size=args.page_size), transaction=session_scope
        )
        rows.append(("re-push (nothing to do)", again["created"], time.perf_counter() - start))

        with LabelStudioClient.connect(server.url, server.admin_token) as admin:
            tasks = list(admin.list_tasks(pushed["ls_project_id"], page_size=1000))
        same = [
            {
                "data": t["data"],
                "predictions": [
                    {k: p[k] for k in ("model_version", "score", "result")}
                    for p in t["predictions"]
                ],
            }
            for t in tasks
        ]
        rows.append(
            (
                "naive SDK import (1 request)",
                len(same),
                naive_import(server.url, server.admin_token, same),
            )
        )

        task_ids = [int(t["id"]) for t in tasks]
        annotated = annotate(server.url, tokens, task_ids, per_annotator=2)
        rows.append(("create annotations via API (setup, 4 threads)", 2 * len(task_ids), annotated))

        start = time.perf_counter()
        pulled = pull(
            PullRequest(queue_id=queue_id, page_size=args.page_size), transaction=session_scope
        )
        rows.append(
            (f"pull (paged {args.page_size})", pulled["created"], time.perf_counter() - start)
        )
        start = time.perf_counter()
        repeat = pull(
            PullRequest(queue_id=queue_id, page_size=args.page_size), transaction=session_scope
        )
        rows.append(
            ("re-pull, incremental (nothing new)", repeat["created"], time.perf_counter() - start)
        )
        start = time.perf_counter()
        full = pull(
            PullRequest(queue_id=queue_id, page_size=args.page_size, full=True),
            transaction=session_scope,
        )
        rows.append(
            ("re-pull, full (nothing new)", full["annotations"], time.perf_counter() - start)
        )
        assert repeat["created"] == full["created"] == 0
        with session_scope() as session:
            from dataops.selection.lifecycle import batch_summary

            status = batch_summary(session, batch_id)["status"]
        dispose_engines()

    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"\nLabel Studio 1.23.2 (SQLite, local), dataops catalog on {backend}, "
        f"{args.tasks} tasks, batch ended {status}\n"
    )
    print("| step | tasks / annotations | seconds | per second |")
    print("|---|---:|---:|---:|")
    for step, count, seconds in rows:
        rate = f"{count / seconds:,.0f}" if count and seconds > 0 else "-"
        print(f"| {step} | {count:,} | {seconds:.2f} | {rate} |")


if __name__ == "__main__":
    main()
