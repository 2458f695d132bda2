"""Screenshots of the operations console for the README, from a seeded demo catalog.

    .venv/bin/python scripts/console_screenshots.py [--out docs/console] [--keep DIR]

Builds a fresh embedded catalog with ``dataops demo`` (ingest, dedup, a trained model,
scores, an active-learning and a hard-negative batch, labels, a manifest), adds what the demo
has no Label Studio for (a vendor queue whose batch two annotators answered, and its audit),
users per role, then serves the console with uvicorn and photographs the main pages in
Debian's Chromium through Playwright. PNGs are palette-quantised to stay small. Rerun it
when pages change.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (file name, path, who is signed in, what the picture is of)
SHOTS = [
    ("overview", "/console/", "admin", "catalog counts, live jobs, recent events"),
    ("queues", "/console/queues", "admin", "queues with progress and overdue flags"),
    ("queue", "/console/queues/{queue}", "admin", "one queue: progress, throughput, batches"),
    ("batch", "/console/batches/{batch}", "admin", "a batch's items with thumbnails"),
    ("annotators", "/console/annotators", "admin", "annotator performance"),
    ("audits", "/console/audits", "admin", "audits with decisions"),
    ("audit", "/console/audits/{audit}", "admin", "an audit report with disputed items"),
    ("duplicates", "/console/duplicates", "admin", "duplicate groups"),
    ("requests", "/console/requests", "scientist", "a scientist's batch request form"),
    ("manifests", "/console/manifests", "admin", "manifests"),
    ("jobs", "/console/jobs", "admin", "jobs grouped by kind"),
    ("vendor-queues", "/console/queues", "vendor", "what a vendor sees"),
    ("sign-in", "/console/sign-in", None, "sign-in"),
]


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def _seed_labeling() -> dict[str, Any]:
    """A vendor queue over demo digits answered by two annotators and audited; users."""
    from sqlalchemy import select

    from dataops.auth import service as auth_service
    from dataops.catalog.models import Image
    from dataops.db import session_scope
    from dataops.labeling.models import Vendor
    from dataops.selection.models import ImageClaim
    from tests.support.audits import audited_batch

    classes = ("bird", "cat", "dog")
    answers = [
        (classes[i % 3], classes[i % 3] if i % 5 else classes[(i + 1) % 3]) for i in range(12)
    ]
    tokens: dict[str, str] = {}
    with session_scope() as session:
        digits = list(
            session.scalars(
                select(Image.id)
                .where(
                    Image.uri.like("%/digits/%"),
                    Image.status == "ok",
                    Image.id.not_in(select(ImageClaim.image_id)),
                )
                .order_by(Image.id.desc())
                .limit(len(answers))
            )
        )
        audited = audited_batch(session, digits, name="acme", answers=answers, gate=0.8)
        vendor = session.scalar(select(Vendor.name).where(Vendor.name == "acme"))
        for name, role in (("ada", "admin"), ("sam", "scientist"), ("vic", "vendor")):
            auth_service.create_user(
                session, name, role, vendor=vendor if role == "vendor" else None, actor="demo"
            )
            key = "vendor" if role == "vendor" else role
            tokens[key] = auth_service.create_token(
                session, name, expires_in=None, actor="demo"
            ).token
    return {
        "tokens": tokens,
        "queue": audited.queue_id,
        "batch": audited.batch_id,
        "audit": audited.audit_id,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _quantise(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def _shoot(url: str, seeded: dict[str, Any], out: Path) -> list[tuple[str, int]]:
    from playwright.sync_api import sync_playwright

    taken: list[tuple[str, int]] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        contexts: dict[str | None, Any] = {}

        def page_for(role: str | None) -> Any:
            if role not in contexts:
                context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 860})
                page = context.new_page()
                if role is not None:
                    page.goto("/console/sign-in")
                    page.get_by_label("API token").fill(seeded["tokens"][role])
                    page.get_by_role("button", name="Sign in").click()
                    page.wait_for_url(lambda u: "/sign-in" not in u)
                contexts[role] = page
            return contexts[role]

        for name, path, role, _what in SHOTS:
            page = page_for(role)
            response = page.goto(path.format(**seeded))
            status = response.status if response is not None else 0
            if status != 200:
                print(f"skipped {name}: {path} answered {status}")
                continue
            page.wait_for_load_state("networkidle")
            target = out / f"{name}.png"
            page.screenshot(path=str(target))
            _quantise(target)
            taken.append((name, target.stat().st_size))
        browser.close()
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    parser.add_argument("--keep", type=Path, help="build the catalog here and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="dataops-shots-"))
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAOPS_")}
    env["DATAOPS_DATA_DIR"] = str(work / "data")
    env["DATAOPS_SECRET_KEY"] = "5" * 64
    port = _free_port()
    env["DATAOPS_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    os.environ.update({k: v for k, v in env.items() if k.startswith("DATAOPS_")})

    started = time.monotonic()
    _run([sys.executable, "-m", "dataops", "demo"], env, work)
    print(f"demo catalog built in {time.monotonic() - started:.0f} s")
    seeded = _seed_labeling()

    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "dataops.api.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=work,
    )  # fmt: skip
    try:
        import httpx

        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/console/sign-in", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("the console server did not start")
            time.sleep(0.2)
        for name, size in _shoot(url, seeded, args.out):
            print(f"{args.out / name}.png  {size / 1024:.0f} KiB")
    finally:
        server.terminate()
        server.wait(timeout=15)


if __name__ == "__main__":
    main()
