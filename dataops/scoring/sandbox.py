"""Run an untrusted TorchScript model in a child process that holds no secrets and can reach
nothing but its inputs.

A registered model is code: TorchScript can read files (``torch.from_file``), loop forever or
raise with any message. So the service never loads one itself. ``ModelSandbox`` starts
``sandbox_child.py`` with a scrubbed environment (no ``DATAOPS_*`` settings, database URL,
tokens or signing key; a minimal PATH and HOME), sends it the model's bytes over a pipe, and
sends it one input batch at a time. The child installs a seccomp filter before it reads the
model (see its docstring), runs under an address-space limit, and every call has a wall-clock
deadline and a CPU-time limit; past either the child is killed. Replies are checked against
what was asked (shapes, sizes) before anything is read, and a failure is reported as what was
expected, never with what the model produced.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import mmap
import os
import resource
import select
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeGuard

import numpy as np
from numpy.typing import NDArray

from dataops.scoring.errors import InvalidModel, SandboxUnavailable

CHILD = Path(__file__).with_name("sandbox_child.py")
_START_TIMEOUT = 180.0
_MAX_HEADER = 4096
_MAX_EMBEDDING = 1 << 16
_PIPE_BYTES = 1 << 20
_PASSED_ENV = ("CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH")

EXPECTED = {
    "load": (
        "expected a TorchScript file that loads without touching anything outside itself; "
        "export with torch.jit.script or torch.jit.trace and torch.jit.save"
    ),
    "raised": "expected the model to run on a {shape} input; it raised an error",
    "outputs": "expected logits or (logits, embedding): 1 or 2 outputs",
    "logits": "expected logits as a (N, C) tensor: one row per image, one column per class",
    "rows": "expected logits as a (N, C) tensor with one row per input image",
    "embedding": "expected the embedding to be a tensor with one row per input image",
    "memory": "expected the model to fit in the memory limit (scoring.memory_mb)",
    "protocol": "expected the model process to answer what it was asked",
}
"""What each child error code tells the user: the expectation, never the model's output."""


@dataclass(frozen=True)
class Limits:
    """Per-call limits: ``timeout`` wall seconds, ``cpu_seconds`` of CPU (all threads)."""

    timeout: float
    cpu_seconds: int
    memory_bytes: int
    setting: str = "scoring.batch_timeout"

    @classmethod
    def from_settings(cls, *, probe: bool, threads: int) -> Limits:
        from dataops.config import get_settings

        cfg = get_settings().scoring
        timeout = cfg.probe_timeout if probe else cfg.batch_timeout
        cpu = cfg.cpu_seconds or math.ceil(timeout * max(1, threads)) + 5
        return cls(
            timeout=timeout,
            cpu_seconds=cpu,
            memory_bytes=cfg.memory_mb * 1024 * 1024,
            setting="scoring.probe_timeout" if probe else "scoring.batch_timeout",
        )


def child_env() -> dict[str, str]:
    """The child's whole environment: nothing the service was configured with."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    env.update({k: os.environ[k] for k in _PASSED_ENV if k in os.environ})
    return env


class ModelSandbox:
    """One child process running one model; use as a context manager."""

    def __init__(
        self,
        model: bytes,
        *,
        limits: Limits,
        device: str = "cpu",
        threads: int = 1,
        channels: int = 3,
        name: str = "the model",
    ) -> None:
        self.limits = limits
        self.name = name
        self._model = model
        self._device = device
        self._threads = max(1, threads)
        self._channels = channels
        self._proc: subprocess.Popen[bytes] | None = None
        self._req = self._rep = -1
        self._pending: tuple[float, tuple[int, ...]] | None = None
        self._shm_fd = -1
        self._shm: mmap.mmap | None = None

    def __enter__(self) -> ModelSandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the child, wait until it is filtered, then send it the model."""
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        for fd in (req_w, rep_w):
            with contextlib.suppress(OSError):  # a smaller pipe only costs more wake-ups
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        # Pixels go through shared memory that may only grow: the child cannot shrink it
        # under this process's writes (and its filter denies ftruncate anyway).
        self._shm_fd = os.memfd_create("dataops-model-input", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        fcntl.fcntl(self._shm_fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
        memory = self.limits.memory_bytes if self._device == "cpu" else 0
        args = [CHILD, rep_w, self._shm_fd, self._device, self._threads, self._channels, memory]
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", *map(str, args)],
                stdin=req_r,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=child_env(),
                cwd="/",
                close_fds=True,
                pass_fds=(rep_w, self._shm_fd),
            )
        finally:
            os.close(req_r)
            os.close(rep_w)
        self._req, self._rep = req_w, rep_r
        os.set_blocking(req_w, False)
        header, _ = self._reply(time.monotonic() + _START_TIMEOUT, starting=True)
        if not header.get("ok"):
            self.close()
            raise SandboxUnavailable(
                "the model sandbox could not install its seccomp filter; it needs Linux with "
                "seccomp and libseccomp (Debian/Ubuntu: apt-get install libseccomp2)"
            )
        self._call({"op": "load"}, self._model, what="")
        self._model = b""

    def run(
        self, batch: NDArray[Any] | None, shape: tuple[int, ...] | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
        """Probabilities and embeddings of a float32 (N, C, H, W) batch, or of blank ``shape``."""
        self.submit(batch, shape)
        return self.result()

    def submit(self, batch: NDArray[Any] | None, shape: tuple[int, ...] | None = None) -> None:
        """Send one batch (or a blank of ``shape``); ``result()`` collects it.

        The caller may decode the next batch in between: the child computes meanwhile.
        """
        assert self._pending is None, "collect the result of the batch in flight first"
        if batch is not None:
            batch = np.ascontiguousarray(batch, dtype=np.float32)
            shape = batch.shape
            header: dict[str, Any] = {"op": "run", "shape": list(shape)}
            header |= {"shm": batch.nbytes, "shm_size": self._input_buffer(batch)}
            payload: bytes | memoryview = b""
        else:
            assert shape is not None
            header = {"op": "run", "shape": list(shape), "blank": True}
            payload = b""
        self._pending = (self._send(header, payload), tuple(shape))

    def _input_buffer(self, batch: NDArray[np.float32]) -> int:
        """Copy the batch into the shared input buffer (grown as needed); returns its size."""
        if self._shm is None or len(self._shm) < batch.nbytes:
            size = max(batch.nbytes, 2 * len(self._shm) if self._shm is not None else 0)
            try:
                os.ftruncate(self._shm_fd, size)
            except OSError:
                self._protocol()
            if self._shm is not None:
                self._shm.close()
            self._shm = mmap.mmap(self._shm_fd, size)
        self._shm[: batch.nbytes] = batch.data.cast("B")
        return len(self._shm)

    def result(self) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
        """The reply to the batch sent last."""
        assert self._pending is not None, "submit() first"
        deadline, shape = self._pending
        self._pending = None
        reply, data = self._receive(deadline, what=str(shape))
        return self._arrays(reply, data, int(shape[0]))

    def close(self) -> None:
        if self._shm is not None:
            self._shm.close()
            self._shm = None
        for fd in (self._req, self._rep, self._shm_fd):
            if fd >= 0:
                os.close(fd)
        self._req = self._rep = self._shm_fd = -1
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        if self._proc is not None:
            self._proc.wait()

    # -- the pipe -------------------------------------------------------------------------

    def _call(
        self, header: dict[str, Any], payload: bytes | memoryview, *, what: str
    ) -> tuple[dict[str, Any], bytearray]:
        return self._receive(self._send(header, payload), what=what)

    def _send(self, header: dict[str, Any], payload: bytes | memoryview) -> float:
        """Write one request under fresh limits; returns its deadline."""
        assert self._proc is not None, "start() first"
        self._set_cpu_limit()
        deadline = time.monotonic() + self.limits.timeout
        head = json.dumps({**header, "nbytes": len(payload)}).encode()
        self._write(struct.pack(">I", len(head)) + head, deadline)
        self._write(payload, deadline)
        return deadline

    def _receive(self, deadline: float, *, what: str) -> tuple[dict[str, Any], bytearray]:
        reply, data = self._reply(deadline)
        if not reply.get("ok"):
            code = reply.get("error")
            message = EXPECTED.get(code if isinstance(code, str) else "", EXPECTED["protocol"])
            self.close()
            raise InvalidModel(f"{self.name}: " + message.format(shape=what))
        return reply, data

    def _set_cpu_limit(self) -> None:
        assert self._proc is not None
        pid = self._proc.pid
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            used = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            _, hard = resource.prlimit(pid, resource.RLIMIT_CPU)
            soft = math.ceil(used) + self.limits.cpu_seconds
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
            resource.prlimit(pid, resource.RLIMIT_CPU, (soft, hard))
        except (OSError, IndexError, ValueError):
            pass  # the child is gone; the read that follows reports it

    def _write(self, data: bytes | memoryview, deadline: float) -> None:
        view = memoryview(data).cast("B")
        while view:
            self._wait(self._req, select.POLLOUT, deadline)
            try:
                view = view[os.write(self._req, view) :]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                self._died()

    def _read(self, n: int, deadline: float) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            self._wait(self._rep, select.POLLIN, deadline)
            count = os.readv(self._rep, [view[got:]])
            if not count:
                self._died()
            got += count
        return buf

    def _wait(self, fd: int, event: int, deadline: float) -> None:
        poller = select.poll()
        poller.register(fd, event)
        while not poller.poll(max(0, int((deadline - time.monotonic()) * 1000)) + 1):
            if time.monotonic() >= deadline:
                self._timed_out()

    def _reply(
        self, deadline: float, *, starting: bool = False
    ) -> tuple[dict[str, Any], bytearray]:
        try:
            (size,) = struct.unpack(">I", self._read(4, deadline))
            if size > _MAX_HEADER:
                self._protocol()
            reply = json.loads(self._read(size, deadline))
        except InvalidModel:
            if starting:
                self.close()
                raise SandboxUnavailable(
                    "the model sandbox process did not start; check that torch imports in "
                    f"{sys.executable}"
                ) from None
            raise
        except (ValueError, UnicodeDecodeError):
            self._protocol()
        if not isinstance(reply, dict) or not isinstance(reply.get("nbytes", 0), int):
            self._protocol()
        return reply, self._read(reply.get("nbytes", 0), deadline)

    def _arrays(
        self, reply: dict[str, Any], data: bytearray, rows: int
    ) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
        probs_shape = reply.get("probs")
        emb_shape = reply.get("embedding")
        if not _shape_ok(probs_shape, rows):
            self._protocol()
        if emb_shape is not None and not _shape_ok(emb_shape, rows):
            self._protocol()
        sizes = [math.prod(probs_shape), math.prod(emb_shape) if emb_shape else 0]
        if 4 * sum(sizes) != len(data):
            self._protocol()
        flat = np.frombuffer(data, dtype=np.float32)
        probs = flat[: sizes[0]].reshape(probs_shape)
        embedding = flat[sizes[0] :].reshape(emb_shape) if emb_shape is not None else None
        return probs, embedding

    # -- failures: the child is killed, the message names the limit, not the model's doing ---

    def _timed_out(self) -> NoReturn:
        self.close()
        raise InvalidModel(
            f"{self.name}: expected the model to finish within {self.limits.timeout:g} s "
            f"({self.limits.setting}); it was stopped"
        )

    def _died(self) -> NoReturn:
        assert self._proc is not None
        try:
            code = self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        self.close()
        if code == -signal.SIGXCPU:
            raise InvalidModel(
                f"{self.name}: expected the model to use at most {self.limits.cpu_seconds} CPU "
                "seconds per call (scoring.cpu_seconds); it was stopped"
            )
        raise InvalidModel(
            f"{self.name}: expected the model to run within the sandbox's limits "
            "(scoring.memory_mb, no file or network access); its process stopped"
        )

    def _protocol(self) -> NoReturn:
        self.close()
        raise InvalidModel(f"{self.name}: {EXPECTED['protocol']}")


def _shape_ok(shape: Any, rows: int) -> TypeGuard[list[int]]:
    return (
        isinstance(shape, list)
        and len(shape) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) for s in shape)
        and shape[0] == rows
        and 0 < shape[1] <= _MAX_EMBEDDING
    )
