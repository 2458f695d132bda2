"""Example bodies in the labeling routes' OpenAPI document."""

from __future__ import annotations

TIME = "2026-11-02T09:30:00Z"
VENDOR = {"id": 2, "name": "acme", "queues": 1, "annotators": 4, "created_at": TIME}
GUIDELINE = {
    "id": 4,
    "name": "ppe-detection",
    "version": 1,
    "ref": "ppe-detection:1",
    "sha256": "5e0f3c2a" * 8,
    "kind": "detection",
    "classes": ["person", "helmet", "vest"],
    "created_by": "user:ops",
    "created_at": TIME,
}
QUEUE = {
    "id": 7,
    "name": "acme-ppe",
    "vendor": "acme",
    "vendor_id": 2,
    "guideline": "ppe-detection:1",
    "guideline_id": 4,
    "guideline_sha256": "5e0f3c2a" * 8,
    "kind": "detection",
    "connection": "default",
    "overlap": 0.2,
    "gold": 0.05,
    "due_days": 3.0,
    "on_reject": "relabel_failed",
    "relabel_answers": 3,
    "relabel_agree": 2,
    "relabel_rounds": 2,
    "ls_project_id": 12,
    "batches": 1,
    "created_at": TIME,
}
ANNOTATOR = {
    "id": 9,
    "name": "alice@acme.example",
    "email": "alice@acme.example",
    "vendor": "acme",
    "vendor_id": 2,
    "connection": "default",
    "ls_user_id": 17,
    "mapped_by": "manual",
    "created_at": TIME,
}

TASK_LIST = {
    "queue_id": 7,
    "tasks": [
        {
            "item_id": 301,
            "batch_id": 5,
            "status": "sent",
            "image_id": 42,
            "sha256": "9f2c6a1e" * 8,
            "position": 0,
            "ls_task_id": 881,
            "pushed_at": TIME,
            "media_url": "https://dataops.example.com/v1/media/42?queue=7&exp=1793000000&sig=...",
            "media_expires_at": "2026-11-09T09:30:00Z",
        }
    ],
    "limit": 500,
    "offset": 0,
}

LABEL_VERSION = {
    "id": 12,
    "image_id": 42,
    "sha256": "9f2c6a1e" * 8,
    "annotator": "alice",
    "annotator_id": 3,
    "batch_id": 5,
    "guideline": "helmets@2",
    "task": "default",
    "payload": {"class": "helmet"},
    "status": "accepted",
    "source": "labelstudio",
    "source_id": "default:881",
    "source_updated_at": "2026-11-02T09:31:00Z",
    "supersedes_id": None,
    "created_by": "user:ops",
    "created_at": "2026-11-02T09:31:00Z",
}
