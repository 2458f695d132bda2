"""A real Label Studio server for tests: install, start on a free port, stop, restart.

The server lives in its own virtualenv (``.venv-labelstudio``, git-ignored) because its pins
(Django, Pillow) are not ours. A fresh data dir costs a full migration run (~25-45 s), so one
initialised data dir is cached as a template and copied for every server start (~3 s).

    python -m tests.support.labelstudio install   # virtualenv + template data dir (idempotent)
    python -m tests.support.labelstudio serve     # a server in the foreground
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("DATAOPS_LABELSTUDIO_VENV", REPO / ".venv-labelstudio"))
LABEL_STUDIO_VERSION = "1.23.2"
TEMPLATE = VENV / "template-data"

ADMIN_EMAIL = "admin@dataops.test"
ADMIN_PASSWORD = "dataops-admin-password"
ADMIN_TOKEN = "d474095eed0c0ffee0ddba11ab1eca7edfacade5"
ANNOTATOR_EMAILS = ("annotator1@dataops.test", "annotator2@dataops.test")

COLD_START_TIMEOUT = 240.0
WARM_START_TIMEOUT = 90.0

# Label Studio's settings also read these generic names; an inherited value changes its behaviour.
_UNSET_ENV = ("USERNAME", "PASSWORD", "HOST", "PORT", "DEBUG", "PYTHONPATH", "VIRTUAL_ENV")
_STARTED_RE = re.compile(r"Starting development server at http://[^:/]+:(\d+)/")


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _python311() -> str:
    found = shutil.which("python3.11")
    if found:
        return found
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    raise RuntimeError("python3.11 is needed to create the Label Studio virtualenv")


def ensure_installed() -> Path:
    """Create the Label Studio virtualenv once per checkout; return the ``label-studio`` binary."""
    binary = VENV / "bin" / "label-studio"
    if binary.exists():
        return binary
    with _file_lock(VENV / ".install.lock"):
        if binary.exists():
            return binary
        subprocess.run([_python311(), "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [
                str(VENV / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                f"label-studio=={LABEL_STUDIO_VERSION}",
            ],
            check=True,
        )
    if not binary.exists():
        raise RuntimeError(f"pip finished but {binary} is missing")
    return binary


def _template_marker() -> dict[str, str]:
    return {"label_studio": LABEL_STUDIO_VERSION, "admin": ADMIN_EMAIL, "token": ADMIN_TOKEN}


def ensure_template() -> Path:
    """Initialise (migrate, create the admin) one data dir per machine and cache it."""
    marker = TEMPLATE / "dataops-template.json"
    if marker.exists() and json.loads(marker.read_text()) == _template_marker():
        return TEMPLATE
    ensure_installed()
    with _file_lock(VENV / ".template.lock"):
        if marker.exists() and json.loads(marker.read_text()) == _template_marker():
            return TEMPLATE
        building = VENV / f"template-data.building-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        server = LabelStudioServer(building, startup_timeout=COLD_START_TIMEOUT)
        try:
            server.start()
        finally:
            server.stop()
        log = server.log_path
        if log.exists():
            log.unlink()
        (building / "dataops-template.json").write_text(json.dumps(_template_marker()))
        shutil.rmtree(TEMPLATE, ignore_errors=True)
        building.rename(TEMPLATE)
    return TEMPLATE


def free_port() -> int:
    """A port nothing listens on right now (the caller may still lose a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(data_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _UNSET_ENV and not key.startswith(("LABEL_STUDIO_", "DJANGO_"))
    }
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        LABEL_STUDIO_USERNAME=ADMIN_EMAIL,
        LABEL_STUDIO_PASSWORD=ADMIN_PASSWORD,
        LABEL_STUDIO_USER_TOKEN=ADMIN_TOKEN,
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
        SSRF_PROTECTION_ENABLED="false",
        LATEST_VERSION_CHECK="false",
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        PYTHONUNBUFFERED="1",
    )
    return env


class LabelStudioServer:
    """One ``label-studio start`` process on 127.0.0.1 with a known admin token."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        startup_timeout: float = WARM_START_TIMEOUT,
        cleanup: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.admin_token = ADMIN_TOKEN
        self.startup_timeout = startup_timeout
        self.log_path = data_dir.parent / f"{data_dir.name}.server.log"
        self.start_seconds: float | None = None
        self._cleanup = cleanup
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @classmethod
    def from_template(cls, *, port: int | None = None) -> LabelStudioServer:
        """A server on a private copy of the cached, initialised data dir."""
        template = ensure_template()
        root = Path(tempfile.mkdtemp(prefix="dataops-labelstudio-"))
        shutil.copytree(template, root / "data")
        return cls(root / "data", port=port, cleanup=root)

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server has not been started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no server log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def start(self) -> None:
        """Start the server and wait until it answers ``/health`` on the port it chose."""
        if self.running:
            return
        binary = ensure_installed()
        requested = self.port if self.port is not None else free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = self.log_path.open("ab")
        started = time.monotonic()
        self._process = subprocess.Popen(
            [
                str(binary),
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(requested),
            ],
            cwd=self.data_dir,
            env=_server_env(self.data_dir),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            actual = self._wait_ready(started, log_offset)
        except BaseException:
            self.stop()
            raise
        if self.port is not None and actual != self.port:
            self.stop()
            raise RuntimeError(
                f"Label Studio moved from port {self.port} to {actual}: "
                f"port {self.port} was taken while the server was down"
            )
        self.port = actual
        self.start_seconds = time.monotonic() - started

    def _wait_ready(self, started: float, log_offset: int) -> int:
        # A busy port makes Label Studio silently take the next one, so trust only the port it
        # reports in its own log, and only a health answer on that port.
        deadline = started + self.startup_timeout
        port: int | None = None
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            while time.monotonic() < deadline:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"Label Studio exited with code {self._process.returncode} while "
                        f"starting; log {self.log_path}:\n{self.log_tail()}"
                    )
                if port is None:
                    with self.log_path.open("rb") as log:
                        log.seek(log_offset)
                        found = _STARTED_RE.search(log.read().decode(errors="replace"))
                    if found:
                        port = int(found.group(1))
                if port is not None:
                    try:
                        if http.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                            return port
                    except httpx.TransportError:
                        pass
                time.sleep(0.2)
        raise RuntimeError(
            f"Label Studio did not answer /health within {self.startup_timeout:.0f}s; "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Stop the server process (its whole process group); the data dir stays."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        """Stop and start again on the same data dir and port (for outage tests)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and delete the data dir it was given by ``from_template``."""
        self.stop()
        if self._cleanup is not None:
            shutil.rmtree(self._cleanup, ignore_errors=True)

    def __enter__(self) -> LabelStudioServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def create_user(self, email: str) -> str:
        """Add an organisation member and return its own API token.

        Signing up through the organisation's invite link takes ~0.5 s and gives an ordinary
        member; ``label-studio init`` takes ~4 s and makes a superuser; ``POST /api/users/``
        cannot hand back the new user's token.
        """
        password = secrets.token_urlsafe(18)
        admin = {"Authorization": f"Token {self.admin_token}"}
        with httpx.Client(base_url=self.url, timeout=30.0, trust_env=False) as http:
            invite = http.get("/api/invite", headers=admin)
            invite.raise_for_status()
            signup = f"/user/signup/?token={invite.json()['token']}"
            http.get(signup).raise_for_status()
            response = http.post(
                signup,
                data={
                    "email": email,
                    "password": password,
                    "csrfmiddlewaretoken": http.cookies.get("csrftoken", ""),
                },
                headers={"Referer": f"{self.url}{signup}"},
            )
            if response.status_code != 302:
                raise RuntimeError(
                    f"signing up {email} failed with HTTP {response.status_code}: "
                    f"{response.text[:500]}"
                )
            token = http.get("/api/current-user/token")
            token.raise_for_status()
            return str(token.json()["token"])


@dataclass(frozen=True)
class LabelStudioInstance:
    """What tests need to talk to the session's server, as the admin or as an annotator."""

    url: str
    admin_token: str
    annotator_emails: tuple[str, str]
    annotator_tokens: tuple[str, str]
    server: LabelStudioServer


@pytest.fixture(scope="session")
def labelstudio() -> Iterator[LabelStudioInstance]:
    """One real Label Studio server for the whole test session, with two annotators."""
    with LabelStudioServer.from_template() as server:
        first, second = (server.create_user(email) for email in ANNOTATOR_EMAILS)
        yield LabelStudioInstance(
            url=server.url,
            admin_token=server.admin_token,
            annotator_emails=ANNOTATOR_EMAILS,
            annotator_tokens=(first, second),
            server=server,
        )


def label_stream(url: str, token: str, project_id: int, answer: Callable[[int], str]) -> list[int]:
    """Label, as one account, every task Label Studio's labeling stream (``/next/``) hands it
    until the stream has none left; ``answer(task_id)`` is the class given. Returns the task
    ids in the order they came: what Label Studio asks of this annotator."""
    from dataops.labelstudio.client import LabelStudioClient, prediction_result

    seen: list[int] = []
    headers = {"Authorization": f"Token {token}"}
    with (
        httpx.Client(base_url=url, timeout=30.0, trust_env=False) as http,
        LabelStudioClient.connect(url, token) as client,
    ):
        while True:
            offered = http.get(f"/api/projects/{project_id}/next/", headers=headers)
            if offered.status_code == 404:
                return seen
            offered.raise_for_status()
            task_id = int(offered.json()["id"])
            if task_id in seen:
                raise AssertionError(f"task {task_id} offered twice to one account")
            seen.append(task_id)
            label = answer(task_id)
            client.create_annotation(task_id, prediction_result("classification", label=label))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.labelstudio")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="create the virtualenv and the template data dir")
    serve = commands.add_parser("serve", help="run a server in the foreground until Ctrl-C")
    serve.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)

    if args.command == "install":
        started = time.monotonic()
        print(f"label-studio: {ensure_installed()}", flush=True)
        print(f"template data dir: {ensure_template()}", flush=True)
        print(f"ready in {time.monotonic() - started:.1f}s", flush=True)
        return 0

    with LabelStudioServer.from_template(port=args.port) as server:
        print(f"url:   {server.url}", flush=True)
        print(f"token: {server.admin_token}  (user {ADMIN_EMAIL})", flush=True)
        print(f"log:   {server.log_path}", flush=True)
        try:
            while server.running:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
