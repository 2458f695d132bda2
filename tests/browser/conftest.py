"""Browser tests of the operations console: a real server, Debian's Chromium, axe-core.

Fixtures
--------
- ``console``: a uvicorn process serving ``create_app`` on a free 127.0.0.1 port over a
  fresh PostgreSQL catalog, one per test module (tests in a module share its data; seed what
  a test needs with unique names). It has users per role with their API tokens
  (``console.tokens["admin" | "labeling_ops" | "scientist" | "auditor" | "vendor_a" |
  "vendor_b"]``), one queue per vendor (``console.queues["vendor_a"]``: queue id, with one
  batch of two images), ``console.url`` and ``console.session_factory`` (sessions on that
  catalog). While a test runs, the ``DATAOPS_*`` settings are the server's (catalog, data dir,
  blob store, signing key), so the helpers in ``tests/support`` (``make_queue``,
  ``create_user_token``...) and domain services seed it too; a module-scoped fixture seeds
  with ``with console.settings(): ...`` (``_console_server`` is the module-scoped fixture).
- ``page``: a Playwright page in a fresh browser context (no cookies) whose ``base_url`` is
  the console, so ``page.goto("/console/queues")`` works. The CSP is enforced;
  ``page.csp_errors`` (a list) collects what the browser refused.
- ``sign_in(page, role)``: signs the page in through the form with that role's token.
- ``axe_violations(page) -> list``: serious and critical axe-core violations of the page as
  it is now (``[{"id", "impact", "help", "nodes"}]``); axe comes from ``.ci/node`` (npm).

Chromium is Debian's (``/usr/bin/chromium``), launched by path: Playwright's own browser
downloads are never used.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from tests.support.services import REPO, create_database, drop_database
from tests.support.wait import wait_until

pytestmark = pytest.mark.browser

AXE_JS = REPO / ".ci" / "node" / "node_modules" / "axe-core" / "axe.min.js"
ROLES = ("admin", "labeling_ops", "scientist", "auditor")
VENDORS = ("vendor_a", "vendor_b")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.postgres)


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required in CI")
    pytest.skip(f"{what} is not installed")


def chromium_path() -> str:
    for candidate in (
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    _missing("Debian's chromium (apt-get install chromium)")
    raise AssertionError("unreachable")


@dataclass
class Console:
    url: str
    database_url: str
    tokens: dict[str, str]
    queues: dict[str, int]
    session_factory: sessionmaker[Session]
    users: dict[str, str] = field(default_factory=dict)  # role key -> user name
    log: Path | None = None
    env: dict[str, str] = field(default_factory=dict)  # the server's DATAOPS_* settings

    @contextmanager
    def settings(self) -> Iterator[None]:
        """This process uses the server's settings (catalog, blob store, key) inside."""
        with _settings(self.env):
            yield


@contextmanager
def _settings(env: dict[str, str]) -> Iterator[None]:
    from dataops.config import reset_settings
    from dataops.db import dispose_engines
    from dataops.storage import get_store

    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("DATAOPS_")]:
            mp.delenv(key)
        for key, value in env.items():
            mp.setenv(key, value)
        reset_settings()
        get_store.cache_clear()
        try:
            yield
        finally:
            dispose_engines()
            reset_settings()
            get_store.cache_clear()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed(
    env: dict[str, str], images_dir: Path
) -> tuple[dict[str, str], dict[str, str], dict[str, int]]:
    """Users and tokens per role, and one queue with a two-image batch per vendor."""
    from tests.support.api import create_user_token, ingest_files, make_queue, write_photo

    tokens: dict[str, str] = {}
    users: dict[str, str] = {}
    queues: dict[str, int] = {}
    with _settings(env):
        for role in ROLES:
            users[role] = f"{role.replace('_', '-')}-user"
            tokens[role] = create_user_token(role, name=users[role], expires_days=30)
        for n, key in enumerate(VENDORS):
            vendor = key.replace("_", "-")
            photos = [
                write_photo(images_dir / f"{vendor}-{i}.jpg", seed=10 * n + i) for i in range(2)
            ]
            queues[key] = make_queue(vendor, ingest_files(photos))
            users[key] = f"{vendor}-user"
            tokens[key] = create_user_token(
                "vendor", vendor=vendor, name=users[key], expires_days=30
            )
    return tokens, users, queues


@contextmanager
def serve_console(
    root: Path,
    extra: dict[str, str] | None = None,
    seed: Callable[[dict[str, str]], None] | None = None,
) -> Iterator[Console]:
    """A console server over a fresh migrated PostgreSQL catalog holding ``_seed``'s users and
    queues; ``extra`` adds settings (Label Studio, say), ``seed(settings)`` adds data first."""
    from dataops import migrate

    name = f"dataops_b_{uuid.uuid4().hex[:12]}"
    database_url = create_database(name)
    engine = create_engine(database_url)
    process: subprocess.Popen[bytes] | None = None
    try:
        migrate.upgrade(database_url)
        port = _free_port()
        settings = {
            "DATAOPS_DATABASE_URL": database_url,
            "DATAOPS_DATA_DIR": str(root / "data"),
            "DATAOPS_SECRET_KEY": "b" * 64,
            "DATAOPS_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "DATAOPS_INGEST__WORKERS": "1",
            **(extra or {}),
        }
        (root / "images").mkdir()
        tokens, users, queues = _seed(settings, root / "images")
        if seed is not None:
            seed(settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATAOPS_")}
        env.update(settings)
        log = root / "server.log"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "dataops.api.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=root,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if process is not None and process.poll() is not None:
                raise AssertionError(f"console server exited:\n{log.read_text()[-3000:]}")
            try:
                return httpx.get(f"{url}/console/sign-in", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, "the console server to answer", timeout=60, interval=0.2)
        yield Console(
            url=url,
            database_url=database_url,
            tokens=tokens,
            queues=queues,
            session_factory=sessionmaker(bind=engine, expire_on_commit=False),
            users=users,
            log=log,
            env=settings,
        )
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        engine.dispose()
        drop_database(name)


@pytest.fixture(scope="module")
def _console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with serve_console(tmp_path_factory.mktemp("console")) as console:
        yield console


@pytest.fixture
def console(_console_server: Console) -> Iterator[Console]:
    """The module's console; this test's settings are the server's."""
    with _console_server.settings():
        yield _console_server


@pytest.fixture(scope="module")
def _browser() -> Iterator[Any]:
    """One Chromium per module: Playwright's sync API holds an asyncio loop open while it
    runs, so it must stop before any later test calls ``asyncio.run``."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--disable-gpu"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(_browser: Any, console: Console) -> Iterator[Any]:
    context = _browser.new_context(base_url=console.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.csp_errors = []

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            page.csp_errors.append(message.text)

    page.on("console", on_console)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def sign_in(console: Console) -> Callable[[Any, str], None]:
    def do(page: Any, role: str) -> None:
        page.goto("/console/sign-in")
        page.get_by_label("API token").fill(console.tokens[role])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/console/sign-in" not in url)

    return do


_AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter(v => v.impact === "serious" || v.impact === "critical")
    .map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))}));
}"""


@pytest.fixture(scope="session")
def _axe_source() -> str:
    if not AXE_JS.exists():
        _missing(f"axe-core ({AXE_JS}; run `npm ci --prefix .ci/node`)")
    return AXE_JS.read_text()


@pytest.fixture
def axe_violations(_axe_source: str) -> Callable[[Any], list[dict[str, Any]]]:
    """Runs axe in the page through the DevTools protocol (not a <script>: the CSP holds)."""

    def run(page: Any) -> list[dict[str, Any]]:
        if not page.evaluate("() => typeof window.axe !== 'undefined'"):
            page.evaluate(f"() => {{ {_axe_source}\n }}")
        return list(page.evaluate(_AXE_RUN))

    return run
