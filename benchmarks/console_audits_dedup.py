"""Server time of the audits and duplicates console pages on a big PostgreSQL catalog.

Seeds a throwaway database with SQL (1M images, 50k duplicate groups of 3, a manifest of every
image split 80/10/10, 10k batches of 100 items, 10k audits with 50 disputed items each), signs
an auditor in and requests each page (and the leak report's /v1 twin) RUNS times through the
app in-process; prints median and p95 per page. The first leak report of a manifest computes
its counts (seconds at this size); later requests reuse them, see dataops/manifests/leaks.py.

    RUNS=20 python benchmarks/console_audits_dedup.py
"""

import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.services import create_database, drop_database

N_IMAGES = 1_000_000  # the batches and audits below reference all of them
name = f"dataops_p3b_{uuid.uuid4().hex[:8]}"
url = create_database(name)
os.environ["DATAOPS_DATABASE_URL"] = url
os.environ["DATAOPS_DATA_DIR"] = "/tmp/p3bench-data"
os.environ["DATAOPS_SECRET_KEY"] = "c" * 64
from sqlalchemy import create_engine, text  # noqa: E402

engine = create_engine(url)
try:
    from dataops import migrate
    from dataops.config import reset_settings

    reset_settings()
    migrate.upgrade(url)
    t0 = time.time()
    with engine.begin() as c:
        c.execute(
            text("""
          INSERT INTO images (id, sha256, uri, bytes, attributes, status, ingested_at)
          SELECT i, md5(i::text) || md5((i + 7)::text), '/data/fleet/IMG_' || i || '.jpg', 1000,
                 '{}'::json, 'ok', now()
          FROM generate_series(1, :n) AS i"""),
            {"n": N_IMAGES},
        )
        c.execute(
            text("""
          INSERT INTO dup_groups (id, representative_id, size, max_distance, methods, created_at, updated_at)
          SELECT g, (g - 1) * 3 + 1, 3, 2, 'phash', now(), now() FROM generate_series(1, 50000) AS g""")
        )
        c.execute(text("UPDATE images SET dup_group_id = (id - 1) / 3 + 1 WHERE id <= 150000"))
        c.execute(
            text("""
          INSERT INTO manifests (name, content_hash, seed, splits, selection, row_count, split_counts, body_key, parquet_key, created_at)
          VALUES ('big-v1', 'sha256:' || repeat('ab', 32), 0, '{}'::json, '{}'::json, :n, '{}'::json, 'b', 'p', now())"""),
            {"n": N_IMAGES},
        )
        c.execute(
            text("""
          INSERT INTO manifest_rows (content_hash, sha256, image_id, split)
          SELECT 'sha256:' || repeat('ab', 32), sha256, id,
                 CASE WHEN id % 10 < 8 THEN 'train' WHEN id % 10 = 8 THEN 'val' ELSE 'test' END
          FROM images""")
        )
        c.execute(text("INSERT INTO vendors (id, name, created_at) VALUES (1, 'acme', now())"))
        c.execute(
            text("""INSERT INTO guidelines (id, name, version, sha256, kind, classes, body, label_config, created_at)
          VALUES (1, 'g', 1, repeat('d', 64), 'classification', '["cat","dog"]'::json, '#', '<View/>', now())""")
        )
        c.execute(
            text(
                "INSERT INTO queues (id, name, vendor_id, guideline_id, connection, overlap, gold, on_reject, relabel_answers, relabel_agree, relabel_rounds, accept_rule, created_at) VALUES (1, 'acme-q', 1, 1, 'default', 0.1, 0.05, 'relabel_failed', 3, 2, 2, 'majority', now())"
            )
        )
        c.execute(
            text("""INSERT INTO batches (id, purpose, strategy, params, seed, queue_id, size, overlap, gold, status, created_at)
          SELECT b, 'active_learning', 'random', '{}'::json, 0, 1, 100, 0.1, 0.05, 'accepted', now() FROM generate_series(1, 10000) AS b""")
        )
        c.execute(
            text("""INSERT INTO batch_items (batch_id, image_id, item_key, position, is_overlap, is_gold, required_annotations, ls_task_id)
          SELECT (i - 1) / 100 + 1, i, 'k' || i, (i - 1) % 100, true, false, 2, i FROM generate_series(1, 1000000) AS i""")
        )
    print(f"seeded in {time.time() - t0:.0f} s", flush=True)
    # 10k audits, each with 50 disputed items referencing its batch's images.
    summary = {
        "n_items": 100,
        "n_annotators": 2,
        "percent_agreement": 0.9,
        "cohen_kappa": 0.8,
        "fleiss_kappa": 0.8,
        "gwet_ac1": 0.85,
        "krippendorff_alpha": 0.8,
    }
    with engine.begin() as c:
        shas = dict(c.execute(text("SELECT id, sha256 FROM images WHERE id <= 1000000")).all())
        rows = []
        for b in range(1, 10001):
            disputed = [
                {
                    "item": shas[(b - 1) * 100 + k + 1],
                    "labels": {"a": "cat", "b": "dog"},
                    "majority": None,
                    "reason": "tie",
                }
                for k in range(50)
            ]
            metrics = {
                "gate": {
                    "n_items": 100,
                    "n_passed": 50,
                    "gate": 0.95,
                    "pass_rate": 0.5,
                    "accepted": False,
                },
                "summary": summary,
                "disputed": disputed,
                "counts": {"disputed": 50},
                "annotators": [{"annotator": "a", "vendor": "acme", "n_items": 100}],
                "outcome": {
                    "items": {"accepted": 50, "relabel": 50},
                    "rule": "r",
                    "relabel_rule": "k",
                },
            }
            rows.append({"b": b, "m": json.dumps(metrics)})
        c.execute(text("ALTER TABLE audits DISABLE TRIGGER USER"))
        c.execute(
            text(
                "INSERT INTO audits (batch_id, gate, pass_rate, decision, metrics, created_at) VALUES (:b, 0.95, 0.5, 'rejected', CAST(:m AS json), now())"
            ),
            rows,
        )
        c.execute(text("ALTER TABLE audits ENABLE TRIGGER USER"))
        c.execute(text("ANALYZE"))
    print(f"audits in {time.time() - t0:.0f} s", flush=True)

    from fastapi.testclient import TestClient

    from dataops.api.app import create_app
    from dataops.config import get_settings
    from dataops.console import sessions
    from dataops.db import session_scope
    from tests.support.api import create_user_token

    token = create_user_token("auditor", name="bench-auditor")
    with session_scope() as s:
        new = sessions.sign_in(s, token, settings=get_settings().console)
    client = TestClient(create_app())
    client.cookies.set(sessions.COOKIE_NAME, new.session_id)
    pages = {
        "audits list": "/console/audits",
        "audits list, offset 9000": "/console/audits?offset=9000",
        "audit page (50 disputed)": "/console/audits/5000",
        "audit page, disputed offset 24": "/console/audits/9999?offset=24",
        "duplicates": "/console/duplicates",
        "duplicates, offset 40000": "/console/duplicates?offset=40000",
        "duplicate group": "/console/duplicates/25000",
        "manifest leaks (1M rows)": "/console/manifests/big-v1/leaks",
        "GET /v1/manifests/big-v1/leaks": None,
    }
    api_token = {"Authorization": f"Bearer {token}"}
    for label, path in pages.items():
        times = []
        for _ in range(int(os.environ.get("RUNS", 20))):
            t = time.perf_counter()
            if path is None:
                r = client.get("/v1/manifests/big-v1/leaks", headers=api_token, cookies={})
            else:
                r = client.get(path)
            times.append(1000 * (time.perf_counter() - t))
            assert r.status_code == 200, (label, r.status_code, r.text[:300])
        times.sort()
        p95 = times[int(0.95 * (len(times) - 1))]
        print(
            f"{label:36s} median {statistics.median(times):7.1f} ms  p95 {p95:7.1f} ms", flush=True
        )
finally:
    from dataops.db import dispose_engines

    dispose_engines()
    engine.dispose()
    drop_database(name)
