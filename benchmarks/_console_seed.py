"""Bulk seed for the console benchmark: a big PostgreSQL catalog written by SQL alone.

Every table is filled by ``INSERT ... SELECT generate_series`` (no ORM, no Python loop over
rows): ``n`` images (1 % quarantined, 5 % in two-image duplicate groups), 5 vendors with 4
queues each, 200 annotators, ``batches`` batches of ``items_per_batch`` items (each image in
at most one batch; task keys for every pushed item), ``labels`` label versions spread over the
pushed items and 60 days, jobs (mostly per-queue sync pulls) and audit events. ``ANALYZE``
at the end, as a live catalog would have.
"""

from __future__ import annotations

import psycopg

VENDORS = 5
QUEUES_PER_VENDOR = 4
ANNOTATORS = 200
CLASSES = ("hat", "shirt", "dress", "shoe")


def seed(
    dsn: str, *, images: int, batches: int, items_per_batch: int, labels: int
) -> dict[str, float]:
    """Fill the catalog; returns seconds per table."""
    import time

    timings: dict[str, float] = {}
    queues = VENDORS * QUEUES_PER_VENDOR
    items = min(images, batches * items_per_batch)
    # the newest batches: drafts (not pushed), then sent, then in progress; the rest closed
    drafts, sent, progress = max(2, batches // 500), max(4, batches // 50), max(4, batches // 50)
    steps = [
        (
            "dup_groups",
            f"""INSERT INTO dup_groups (id, representative_id, size, max_distance, methods, created_at, updated_at)
            SELECT g, (g - 1) * 20 + 1, 2, 3, 'phash', now(), now() FROM generate_series(1, {images // 20}) g""",
        ),
        (
            "images",
            f"""INSERT INTO images (id, sha256, uri, bytes, attributes, status, quarantine_reason, ingested_at, dup_group_id, width, height, format)
            SELECT i, encode(sha256(i::text::bytea), 'hex'), '/data/bench/' || i || '.jpg', 20000,
                   jsonb_build_object('site', 'site-' || (i % 7)),
                   CASE WHEN i % 100 = 50 THEN 'quarantined' ELSE 'ok' END,
                   CASE WHEN i % 100 = 50 THEN 'truncated file' END,
                   now() - (i % 90) * interval '1 day',
                   CASE WHEN i % 20 IN (1, 2) THEN (i - 1) / 20 + 1 END, 640, 480, 'JPEG'
            FROM generate_series(1, {images}) i""",
        ),
        (
            "vendors, guidelines, queues, annotators",
            f"""INSERT INTO vendors (id, name, created_at) SELECT v, 'vendor-' || v, now() FROM generate_series(1, {VENDORS}) v;
            INSERT INTO guidelines (id, name, version, sha256, kind, classes, body, label_config, created_at)
            SELECT g, 'task-' || g, 1, encode(sha256(('g' || g)::bytea), 'hex'), 'classification',
                   '["hat", "shirt", "dress", "shoe"]'::jsonb, '# Garments', '<View/>', now()
            FROM generate_series(1, {VENDORS}) g;
            INSERT INTO queues (id, name, vendor_id, guideline_id, connection, overlap, gold, due_days, on_reject,
                                relabel_answers, relabel_agree, relabel_rounds, accept_rule, created_at)
            SELECT q, 'queue-' || q, (q - 1) % {VENDORS} + 1, (q - 1) % {VENDORS} + 1, 'default', 0.1, 0.05, 7,
                   'relabel_failed', 3, 2, 2, 'majority', now()
            FROM generate_series(1, {queues}) q;
            INSERT INTO annotators (id, name, vendor_id, connection, mapped_by, created_at)
            SELECT a, 'annotator-' || a, (a - 1) % {VENDORS} + 1, 'default', 'import', now()
            FROM generate_series(1, {ANNOTATORS}) a""",
        ),
        (
            "batches",
            f"""INSERT INTO batches (id, purpose, strategy, params, seed, queue_id, size, overlap, gold, status,
                                  requested_by, due_at, created_at, sent_at, delivered_at)
            SELECT b, 'active_learning', 'margin', '{{}}'::jsonb, b, (b - 1) % {queues} + 1, {items_per_batch}, 0.1, 0.05,
                   CASE WHEN b > {batches} - {drafts} THEN 'draft'
                        WHEN b > {batches} - {drafts + sent} THEN 'sent'
                        WHEN b > {batches} - {drafts + sent + progress} THEN 'in_progress'
                        WHEN b % 10 = 0 THEN 'rejected' ELSE 'accepted' END,
                   'user:bench', now() - (({batches} - b) % 60) * interval '1 day' + interval '7 days',
                   now() - (({batches} - b) % 60) * interval '1 day',
                   CASE WHEN b <= {batches} - {drafts} THEN now() - (({batches} - b) % 60) * interval '1 day' END,
                   CASE WHEN b <= {batches} - {drafts + sent + progress} THEN now() - (({batches} - b) % 60) * interval '1 day' + interval '2 days' END
            FROM generate_series(1, {batches}) b""",
        ),
        (
            "batch_items",
            f"""INSERT INTO batch_items (id, batch_id, image_id, item_key, position, score, is_overlap, is_gold,
                                      required_annotations, ls_task_id, pushed_at)
            SELECT i, (i - 1) / {items_per_batch} + 1, i, 'item-' || i, (i - 1) % {items_per_batch}, ((i::bigint * 7919) % 1000) / 1000.0,
                   i % 10 = 3, i % 20 = 7, CASE WHEN i % 10 = 3 THEN 2 ELSE 1 END,
                   CASE WHEN (i - 1) / {items_per_batch} + 1 <= {batches} - {drafts} THEN i END,
                   CASE WHEN (i - 1) / {items_per_batch} + 1 <= {batches} - {drafts} THEN now() END
            FROM generate_series(1, {items}) i""",
        ),
        (
            "task_keys",
            """INSERT INTO task_keys (key, batch_item_id, batch_id, image_id, queue_id, is_gold, created_at)
            SELECT 'tk-' || bi.id, bi.id, bi.batch_id, bi.image_id, b.queue_id, bi.is_gold, now()
            FROM batch_items bi JOIN batches b ON b.id = bi.batch_id WHERE bi.ls_task_id IS NOT NULL""",
        ),
        (
            "label_versions",
            f"""INSERT INTO label_versions (id, image_id, annotator_id, batch_id, guideline_id, task, payload, source,
                                         source_id, source_updated_at, source_key, status, created_by, created_at, lead_time)
            SELECT l, bi.image_id,
                   CASE WHEN b.status IN ('sent', 'in_progress') THEN 1 + l % 2 ELSE (l % {ANNOTATORS}) + 1 END,
                   bi.batch_id, (b.queue_id - 1) % {VENDORS} + 1,
                   'task-' || ((b.queue_id - 1) % {VENDORS} + 1),
                   jsonb_build_object('class', (ARRAY['hat', 'shirt', 'dress', 'shoe'])[l % 4 + 1]),
                   'labelstudio', l::text, b.sent_at + (l % 48) * interval '1 hour', 'ls:' || l,
                   CASE WHEN b.status = 'accepted' THEN 'accepted' WHEN b.status = 'rejected' THEN 'rejected'
                        ELSE 'submitted' END,
                   'labelstudio', b.sent_at + (l % 48) * interval '1 hour', 5 + l % 60
            FROM generate_series(1, {labels}) l
            JOIN batch_items bi ON bi.id = (l - 1) % (({batches} - {drafts}) * {items_per_batch}) + 1
            JOIN batches b ON b.id = bi.batch_id""",
        ),
        (
            "jobs",
            f"""INSERT INTO jobs (id, kind, params, status, progress_done, progress_total, result, attempts, created_by,
                               created_at, started_at, finished_at, counters)
            SELECT md5('job' || j), CASE WHEN j % 10 < 8 THEN 'sync' WHEN j % 10 = 8 THEN 'select' ELSE 'ingest' END,
                   CASE WHEN j % 10 < 8 THEN jsonb_build_object('action', 'pull', 'queue_id', j % {queues} + 1)
                        ELSE jsonb_build_object('size', 100) END,
                   CASE WHEN j > 19990 THEN 'running' WHEN j % 97 = 0 THEN 'failed' ELSE 'succeeded' END,
                   CASE WHEN j > 19990 THEN 40 ELSE 100 END, 100,
                   CASE WHEN j % 97 <> 0 AND j <= 19990 THEN jsonb_build_object('imported', j % 13, 'tasks', 100) END,
                   1, 'user:bench', now() - (20000 - j) * interval '2 minutes',
                   now() - (20000 - j) * interval '2 minutes',
                   CASE WHEN j <= 19990 THEN now() - (20000 - j) * interval '2 minutes' + interval '5 seconds' END, '{{}}'::jsonb
            FROM generate_series(1, 20000) j""",
        ),
        (
            "audit_events",
            """INSERT INTO audit_events (at, actor, action, entity_type, entity_id, details)
            SELECT now() - (200000 - e) * interval '10 seconds', 'user:bench', 'label.pulled', 'queue', (e % 20)::text, '{}'::jsonb
            FROM generate_series(1, 200000) e""",
        ),
    ]
    with psycopg.connect(dsn) as conn:
        conn.execute("SET session_replication_role = replica")  # skip FK and append-only triggers
        for name, sql in steps:
            start = time.perf_counter()
            for statement in sql.split(";\n"):
                if statement.strip():
                    conn.execute(statement)  # type: ignore[arg-type]
            timings[name] = time.perf_counter() - start
        for table in (
            "dup_groups",
            "images",
            "vendors",
            "guidelines",
            "queues",
            "annotators",
            "batches",
            "batch_items",
            "task_keys",
            "label_versions",
            "audit_events",
        ):
            conn.execute(  # type: ignore[arg-type]
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        conn.commit()
        conn.autocommit = True
        start = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        timings["vacuum analyze"] = time.perf_counter() - start
    return timings
