"""Which function runs each job kind, and on which worker queue.

Handlers are import strings so that neither the CLI nor the worker imports every domain
(and torch, faiss, the Label Studio SDK) before it needs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataops.jobs.context import JobContext

HANDLERS: dict[str, str] = {
    "ingest": "dataops.catalog.jobs:run_ingest_job",
    "score": "dataops.scoring.jobs:run_score_job",
    "select": "dataops.selection.jobs:run_select_job",
    "audit": "dataops.audits.jobs:run_audit_job",
    "sync": "dataops.labelstudio.jobs:run_sync_job",
    "manifest": "dataops.manifests.jobs:run_manifest_job",
    "dedup": "dataops.dedup.jobs:run_dedup_job",
    "label_quality": "dataops.quality.jobs:run_label_quality_job",
}

QUEUES: dict[str, str] = {
    "ingest": "ingest",
    "score": "score",
    "select": "dedup",
    "audit": "audit",
    "sync": "sync",
    "manifest": "manifest",
    "dedup": "dedup",
    "label_quality": "score",
}


Handler = Callable[["JobContext"], dict[str, Any]]


def handler_for(kind: str) -> Handler:
    module, _, attr = HANDLERS[kind].partition(":")
    handler: Handler = getattr(importlib.import_module(module), attr)
    return handler


def task_name(kind: str) -> str:
    return f"dataops.{kind}.run"
