"""The one list of routers the app mounts, and the OpenAPI description of each tag.

To add a domain, see the recipe in `dataops.api.app`; then import its router here and
append it to ROUTERS (and its tag to TAGS).
"""

from __future__ import annotations

from fastapi import APIRouter

from dataops.api import metrics
from dataops.audits import router as audits
from dataops.auth import router as auth
from dataops.catalog import router as catalog
from dataops.dedup import router as dedup
from dataops.jobs import router as jobs
from dataops.labeling import router as labeling
from dataops.labelstudio import router as labelstudio
from dataops.manifests import router as manifests
from dataops.overview import router as overview
from dataops.performance import router as performance
from dataops.progress import router as progress
from dataops.quality import router as quality
from dataops.scoring import router as scoring
from dataops.selection import router as selection

ROUTERS: list[APIRouter] = [
    auth.router,
    catalog.router,
    catalog.media_router,
    dedup.router,
    jobs.router,
    labelstudio.router,
    scoring.router,
    selection.router,
    performance.router,
    labeling.router,
    progress.router,
    audits.router,
    manifests.router,
    quality.router,
    overview.router,
    metrics.router,
]

TAGS: list[dict[str, str]] = [
    {"name": "auth", "description": "Users, roles and API tokens."},
    {"name": "catalog", "description": "Images, thumbnails and ingest."},
    {
        "name": "media",
        "description": "Signed, expiring image URLs for Label Studio; EXIF stripped.",
    },
    {"name": "dedup", "description": "Duplicate groups and their contact sheets."},
    {"name": "jobs", "description": "Progress, results and errors of long work."},
    {"name": "models", "description": "Registered model versions and scoring jobs."},
    {"name": "batches", "description": "Batch selection (active learning, hard negatives)."},
    {"name": "vendors", "description": "Labeling vendors."},
    {
        "name": "guidelines",
        "description": "Versioned labeling guidelines (content-hashed) and their Label Studio configs.",
    },
    {
        "name": "queues",
        "description": (
            "Vendor queues pinned to one guideline version, and their tasks with signed media "
            "URLs; vendors see only their own."
        ),
    },
    {"name": "annotators", "description": "Annotators and their Label Studio accounts."},
    {"name": "labels", "description": "Label versions from Label Studio and imports."},
    {
        "name": "audits",
        "description": "Batch audits: agreement, gold accuracy, gate decisions and reports.",
    },
    {
        "name": "manifests",
        "description": "Immutable, content-addressed training manifests and their datasheets.",
    },
    {
        "name": "label quality",
        "description": "Label issues from out-of-sample model probabilities (cleanlab); staff only.",
    },
    {
        "name": "labelstudio",
        "description": (
            "Push batches to Label Studio and pull annotations back (202 + job), and its "
            "webhooks (secret header); polling remains the ground truth."
        ),
    },
    {
        "name": "overview",
        "description": "The catalog at a glance: counts, jobs at work, latest events; staff only.",
    },
    {"name": "operations", "description": "Prometheus metrics and health."},
]
