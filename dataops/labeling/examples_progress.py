"""Example bodies of the progress routes' OpenAPI document (``progress_router``)."""

from __future__ import annotations

from dataops.labeling.examples import TIME

COUNTS = {
    "items": 120,
    "sent": 120,
    "answered": 96,
    "accepted": 60,
    "rejected": 4,
    "answers": 118,
    "overlap_items": 24,
    "gold_items": 6,
}
PROGRESS = {
    **COUNTS,
    "queue_id": 7,
    "queue": "acme-ppe",
    "vendor": "acme",
    "vendor_id": 2,
    "guideline": "ppe-detection:1",
    "due_days": 3.0,
    "next_due_at": "2026-11-05T09:30:00Z",
    "overdue": False,
    "batches": 2,
    "open_batches": 1,
    "period_days": 3,
    "throughput": [
        {"day": "2026-11-01", "answers": 0},
        {"day": "2026-11-02", "answers": 70},
        {"day": "2026-11-03", "answers": 48},
    ],
    "period_answers": 118,
}
BATCH_ROW = {
    **COUNTS,
    "id": 5,
    "queue_id": 7,
    "queue": "acme-ppe",
    "status": "in_progress",
    "purpose": "active_learning",
    "strategy": "least_confidence",
    "created_at": TIME,
    "sent_at": TIME,
    "due_at": "2026-11-05T09:30:00Z",
    "overdue": False,
}
BATCH_LIST = {"batches": [BATCH_ROW], "total": 1, "limit": 50, "offset": 0}
BATCH_ITEMS = {
    "batch": BATCH_ROW,
    "items": [
        {
            "key": "4f1c9a0e" * 4,
            "ls_task_id": 881,
            "media_url": "/v1/media/t/4f1c...?exp=1793000000&sig=...",
            "position": 0,
            "image_id": 42,
            "file_name": "site3-cam2-0042.jpg",
            "score": 0.91,
            "predicted_class": "helmet",
            "predicted_score": 0.52,
            "is_gold": False,
            "is_overlap": True,
            "labels": [
                {"annotator": "alice@acme.example", "value": "helmet", "status": "accepted"},
                {"annotator": "bob@acme.example", "value": "helmet", "status": "accepted"},
            ],
        }
    ],
    "total": 120,
    "limit": 60,
    "offset": 0,
}
