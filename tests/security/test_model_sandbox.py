"""A registered model is untrusted code: it runs in a sandboxed process that holds no secret,
cannot open a file or a socket, and is stopped at its time limit; what it produces never
reaches an error message or a log.

The crafted models read the signing key file or /proc/self/environ with ``torch.from_file``
(while loading, or in forward), leak through an error message or an output shape, loop
forever, or raise. Each is first shown to do its harm outside the sandbox, so a refusal below
is the sandbox's doing.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from dataops.config import get_settings, reset_settings
from dataops.scoring.errors import InvalidModel
from dataops.scoring.sandbox import CHILD, Limits, ModelSandbox
from tests.support.api import MakeUser, bearer, ingest_files
from tests.support.brightness_model import write_gray
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow  # every test starts sandbox processes, each importing torch

SECRET = "zyx-signing-key-do-not-leak"
SECRET_WIDTH = ord(SECRET[0])  # what a model reading the first byte turns into a shape
SPEC = {"size": [8, 8], "mean": [0.5], "std": [0.25], "channels": 1}
LIMITS = Limits(timeout=120, cpu_seconds=240, memory_bytes=16 << 30)


class ReadsInForward(torch.nn.Module):
    """Raises with the file's first bytes in the message (on blank inputs too, or only not)."""

    def __init__(self, path: str, on_blank: bool = True) -> None:
        super().__init__()
        self.path = path
        self.on_blank = on_blank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.on_blank and bool(x.abs().sum() == 0):
            return torch.zeros((x.shape[0], 2))
        data = torch.from_file(self.path, shared=False, size=12, dtype=torch.uint8)
        codes: list[int] = data.long().tolist()
        raise RuntimeError("secret=" + "".join([chr(c) for c in codes]))


class WideAsTheSecret(torch.nn.Module):
    """Answers with as many columns as the file's first byte: a leak through the class check."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        data = torch.from_file(self.path, shared=False, size=1, dtype=torch.uint8)
        return torch.zeros((x.shape[0], int(data[0])))


class ReadsWhileLoading(torch.nn.Module):
    """TorchScript runs ``__setstate__`` when the file is loaded: the read happens at load."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.secret = torch.zeros(3)

    @torch.jit.export
    def __getstate__(self) -> tuple[str, torch.Tensor, bool]:
        return (self.path, self.secret, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, torch.Tensor, bool]) -> None:
        self.path = state[0]
        self.secret = torch.from_file(state[0], shared=False, size=3, dtype=torch.uint8).float()
        self.training = state[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.secret[:2].expand(x.shape[0], 2)


class Loops(torch.nn.Module):
    def __init__(self, on_blank: bool = True) -> None:
        super().__init__()
        self.on_blank = on_blank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.on_blank and bool(x.abs().sum() == 0):
            return torch.zeros((x.shape[0], 2))
        i = 0
        while i >= 0:
            i += 1
        return torch.zeros((x.shape[0], 2))


class Raises(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("model-made message " + str(x.shape[0]))


class Fine(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = x.mean(dim=(2, 3))
        return torch.cat([m, -m], dim=1), m


def scripted(module: torch.nn.Module) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


def in_process(data: bytes) -> Any:
    """What loading the file in the service itself (as before the sandbox) would do."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(io.BytesIO(data))


@pytest.fixture
def key_file(isolated_env: Path) -> Path:
    """The URL-signing key file of the data dir, with known contents."""
    get_settings().signing_key()
    path = get_settings().resolved_data_dir / "secret_key"
    path.write_text(SECRET)
    return path


def sandbox_children() -> list[int]:
    """Sandbox processes this test process started that are still running."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if stat[0] != "Z" and int(stat[1]) == os.getpid() and str(CHILD).encode() in cmdline:
            found.append(int(entry.name))
    return found


# -- the sandbox process ----------------------------------------------------------------------


def test_the_model_process_holds_no_secret_and_every_thread_is_filtered(
    key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAOPS_DATABASE_URL", "postgresql://svc:hunter2@db/catalog")
    monkeypatch.setenv("DATAOPS_LABELSTUDIO_TOKEN", "ls-token-hunter2")
    monkeypatch.setenv("DATAOPS_SECRET_KEY", "signing-hunter2")
    with ModelSandbox(scripted(Fine()), limits=LIMITS, threads=2) as box:
        probs, embedding = box.run(None, (2, 1, 8, 8))
        environ = Path(f"/proc/{box.pid}/environ").read_bytes()
        tasks = list(Path(f"/proc/{box.pid}/task").iterdir())
        modes = {(t / "status").read_text().split("Seccomp:")[1].split()[0] for t in tasks}
    assert probs.shape == (2, 2)
    assert embedding is not None
    assert b"hunter2" not in environ
    assert b"DATAOPS" not in environ
    names = {item.split(b"=", 1)[0].decode() for item in environ.split(b"\0") if item}
    assert names <= {"PATH", "HOME", "LANG", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH"}
    assert len(tasks) >= 2
    assert modes == {"2"}  # seccomp filter mode on every thread, torch's pools included
    assert sandbox_children() == []


FILTER_PROBE = """
import os, runpy, socket, subprocess, sys
runpy.run_path(sys.argv[1])["install_filter"]()
results = []
for name, attempt in [
    ("open", lambda: open(sys.argv[2], "rb")),
    ("environ", lambda: open("/proc/self/environ", "rb")),
    ("socket", lambda: socket.socket()),
    ("exec", lambda: subprocess.run(["/bin/true"])),
    ("kill", lambda: os.kill(os.getppid(), 0)),
]:
    try:
        attempt()
        results.append(name + ":allowed")
    except PermissionError:
        results.append(name + ":denied")
print(" ".join(results))
"""


@pytest.mark.parametrize("user", ["current", "nobody"])
def test_the_filter_denies_files_sockets_programs_and_signals(key_file: Path, user: str) -> None:
    """As root and as an unprivileged user alike: the filter needs no privilege."""
    kwargs: dict[str, Any] = {}
    target, python = key_file, sys.executable
    if user == "nobody":
        if os.geteuid() != 0:
            pytest.skip("switching to another user needs root")
        kwargs = {"user": 65534, "group": 65534, "extra_groups": []}
        target = Path("/etc/hostname")  # readable by everyone, unlike the key file
        python = "/usr/bin/python3"  # the filter needs only the standard library
        if not Path(python).exists():
            pytest.skip(f"{python} is missing")
    assert target.read_bytes()  # readable before the filter
    done = subprocess.run(
        [python, "-I", "-c", FILTER_PROBE, str(CHILD.with_name("seccomp_filter.py")), str(target)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        cwd="/",
        **kwargs,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "open:denied",
        "environ:denied",
        "socket:denied",
        "exec:denied",
        "kill:denied",
    ]


@pytest.mark.parametrize("target", ["key", "/proc/self/environ"])
def test_a_model_cannot_open_files_in_forward(key_file: Path, target: str) -> None:
    path = str(key_file) if target == "key" else target
    data = scripted(ReadsInForward(path))
    if target == "key":
        with pytest.raises(torch.jit.Error, match=f"secret={SECRET[:12]}"):
            in_process(data)(torch.ones((1, 1, 8, 8)))
    with ModelSandbox(data, limits=LIMITS, name="m.pt") as box, pytest.raises(InvalidModel) as err:
        box.run(None, (1, 1, 8, 8))
    assert str(err.value) == (
        "m.pt: expected the model to run on a (1, 1, 8, 8) input; it raised an error"
    )
    assert sandbox_children() == []


def test_a_model_that_reads_files_while_loading_does_not_load(key_file: Path) -> None:
    data = scripted(ReadsWhileLoading(str(key_file)))
    leaked = in_process(data)(torch.ones((1, 1, 8, 8)))
    assert leaked[0].tolist() == [float(b) for b in SECRET.encode()[:2]]
    with (
        pytest.raises(InvalidModel, match="expected a TorchScript file that loads") as err,
        ModelSandbox(data, limits=LIMITS, name="m.pt"),
    ):
        pass
    assert SECRET[:3] not in str(err.value)


class Greedy(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        big = torch.ones((1 << 31,))  # 8 GiB
        return big[:2].expand(x.shape[0], 2)


def test_cpu_time_and_memory_are_limited() -> None:
    cpu = Limits(timeout=120, cpu_seconds=2, memory_bytes=16 << 30)
    with ModelSandbox(scripted(Loops()), limits=cpu, name="m.pt") as box:
        started = time.monotonic()
        with pytest.raises(InvalidModel, match="at most 2 CPU seconds per call"):
            box.run(None, (1, 1, 8, 8))
    assert time.monotonic() - started < 60
    memory = Limits(timeout=120, cpu_seconds=120, memory_bytes=3 << 30)
    data = scripted(Greedy())
    expected = r"fit in the memory limit \(scoring.memory_mb\)"
    with (
        ModelSandbox(data, limits=memory, name="m.pt") as box,
        pytest.raises(InvalidModel, match=expected),
    ):
        box.run(None, (1, 1, 8, 8))
    assert sandbox_children() == []


# -- over HTTP -----------------------------------------------------------------------------------


def register(api: TestClient, token: str, path: Path, name: str = "crafted") -> Any:
    return api.post(
        "/v1/models",
        json={"name": name, "classes": ["a", "b"], "path": str(path), "input_spec": SPEC},
        headers=bearer(token),
    )


def assert_refused(response: Any, expected: str) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_model"
    assert expected in error["message"], error["message"]
    return str(error["message"])


@pytest.mark.parametrize(
    ("model", "target"),
    [("raises", "key"), ("wide", "key"), ("wide", "/proc/self/environ")],
)
def test_registering_a_file_reading_model_fails_cleanly_without_the_secret(
    api: TestClient,
    make_user: MakeUser,
    ingest_root: Path,
    key_file: Path,
    caplog: pytest.LogCaptureFixture,
    model: str,
    target: str,
) -> None:
    path = str(key_file) if target == "key" else target
    module = ReadsInForward(path) if model == "raises" else WideAsTheSecret(path)
    file = ingest_root / "crafted.pt"
    file.write_bytes(scripted(module))
    caplog.set_level(logging.DEBUG)
    response = register(api, make_user("scientist"), file)
    message = assert_refused(response, "expected")
    assert SECRET[:3] not in response.text
    assert str(SECRET_WIDTH) not in message.replace(str(file), "")
    assert SECRET[:3] not in caplog.text
    assert "secret=" not in caplog.text
    assert api.get("/v1/models", headers=bearer(make_user("scientist"))).json()["models"] == []


def test_a_model_that_raises_is_a_400_without_its_message(
    api: TestClient,
    make_user: MakeUser,
    ingest_root: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    file = ingest_root / "raises.pt"
    file.write_bytes(scripted(Raises()))
    with pytest.raises(torch.jit.Error, match="model-made message"):
        in_process(file.read_bytes())(torch.zeros((2, 1, 8, 8)))
    caplog.set_level(logging.DEBUG)
    response = register(api, make_user("scientist"), file)
    message = assert_refused(response, "it raised an error")
    assert message == (
        f"{file}: expected the model to run on a (2, 1, 8, 8) input; it raised an error"
    )
    assert "model-made" not in caplog.text
    assert "Traceback" not in caplog.text


def test_an_endless_model_is_stopped_at_the_limit_and_the_api_stays_responsive(
    api: TestClient,
    make_user: MakeUser,
    ingest_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATAOPS_SCORING__PROBE_TIMEOUT", "4")
    reset_settings()
    file = ingest_root / "loops.pt"
    file.write_bytes(scripted(Loops()))
    token, other = make_user("scientist"), make_user("scientist")
    outcome: dict[str, Any] = {}

    def register_in_background() -> None:
        started = time.monotonic()
        outcome["response"] = register(api, token, file)
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=register_in_background)
    thread.start()
    wait_until(sandbox_children, "the model process to start", timeout=120, interval=0.1)
    latencies = []
    while thread.is_alive() and len(latencies) < 3:
        started = time.monotonic()
        assert api.get("/v1/models", headers=bearer(other)).status_code == 200
        latencies.append(time.monotonic() - started)
    assert latencies, "the registration ended before the API could be asked anything"
    assert max(latencies) < 5
    thread.join(timeout=300)
    assert_refused(
        outcome["response"], "expected the model to finish within 4 s (scoring.probe_timeout)"
    )
    assert sandbox_children() == []


@pytest.mark.parametrize("model", ["reads", "loops"])
def test_the_score_job_runs_the_model_in_the_sandbox(
    api: TestClient,
    make_user: MakeUser,
    ingest_root: Path,
    key_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model: str,
) -> None:
    """The dry run sees blank images; these models misbehave only on real ones."""
    monkeypatch.setenv("DATAOPS_SCORING__BATCH_TIMEOUT", "4")
    reset_settings()
    ingest_files([write_gray(tmp_path / "grays" / f"g{g}.png", g) for g in (40, 120, 200)])
    module = ReadsInForward(str(key_file), on_blank=False) if model == "reads" else Loops(False)
    file = ingest_root / f"{model}.pt"
    file.write_bytes(scripted(module))
    scientist = make_user("scientist")
    created = register(api, scientist, file, name=model)
    assert created.status_code == 201, created.text
    started = api.post(
        f"/v1/models/{model}/score", json={"batch_size": 2}, headers=bearer(scientist)
    )
    assert started.status_code == 202, started.text
    job = api.get(started.json()["status_url"], headers=bearer(scientist)).json()
    expected = {
        "reads": "expected the model to run on a (2, 1, 8, 8) input; it raised an error",
        "loops": "expected the model to finish within 4 s (scoring.batch_timeout)",
    }[model]
    assert job["status"] == "failed"
    assert expected in job["error"]
    assert SECRET[:3] not in str(job)
    listed = api.get("/v1/models", headers=bearer(scientist)).json()["models"]
    assert [m["predictions"] for m in listed] == [0]
    assert sandbox_children() == []
