"""The process that runs an untrusted TorchScript model (started by ``dataops.scoring.sandbox``).

It is started as a script with ``python -I`` and a scrubbed environment, and imports only the
standard library, numpy and torch, so nothing of the service (settings, secrets, database) is
ever in its memory. Before it reads the model it warms torch up on a model of its own, then
installs a seccomp filter on every thread: from then on opening files, creating sockets,
executing programs, signalling or tracing other processes and changing its limits fail with
EPERM. TorchScript runs code while loading (``__setstate__``), so the filter comes first.

Protocol, on fd 0 (requests) and the fd named on the command line (replies): a 4-byte
big-endian length, a JSON header, then ``nbytes`` raw bytes. Input pixels travel in a memfd
both processes map (a pipe costs a context switch per 1 MiB under load), the model's bytes
and all replies through the pipes. Errors are short codes, never the
model's messages or values: the parent turns a code into a message that says what was expected.
fd 1 and 2 point at /dev/null, so a model's ``print`` reaches nobody.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import io
import json
import mmap
import os
import resource
import struct
import sys
import warnings
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import torch
from numpy.typing import NDArray

_PR_SET_PDEATHSIG = 1
_SIGKILL = 9
FILTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp_filter.py")

ERRORS = (
    "sandbox",
    "load",
    "raised",
    "outputs",
    "logits",
    "rows",
    "embedding",
    "memory",
    "protocol",
)
"""Every error code a reply may carry."""


def _read_exact(fd: int, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        count = os.readv(fd, [view[got:]])
        if not count:
            raise EOFError
        got += count
    return buf


def receive(fd: int) -> tuple[dict[str, Any], bytearray]:
    (size,) = struct.unpack(">I", _read_exact(fd, 4))
    header = json.loads(_read_exact(fd, size))
    return header, _read_exact(fd, int(header.get("nbytes", 0)))


def send(fd: int, header: dict[str, Any], *payload: bytes | memoryview) -> None:
    parts = [memoryview(p).cast("B") for p in payload]
    head = json.dumps({**header, "nbytes": sum(len(p) for p in parts)}).encode()
    chunks: list[bytes | memoryview] = [struct.pack(">I", len(head)), head, *parts]
    for part in chunks:
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view) :]


class _Warmup(torch.nn.Module):
    """Touches what scoring uses (conv, pooling, linear, softmax) before the filter."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        emb = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(h, 1), 1)
        return self.fc(emb), emb


def load(data: bytes | bytearray, device: torch.device) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jit_load = cast(Callable[..., Any], torch.jit.load)  # unannotated in torch
        model = jit_load(io.BytesIO(data), map_location=device)
    model.eval()
    return model


class Failed(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def forward(
    model: Any, batch: torch.Tensor
) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
    """Softmax probabilities and optional embeddings, each with one row per input image."""
    try:
        with torch.inference_mode():
            output = model(batch)
    except MemoryError:
        raise Failed("memory") from None
    except Exception as exc:  # torch.jit.Error, RuntimeError, ... all say the same to the parent
        raise Failed("memory" if "allocate memory" in str(exc) else "raised") from None
    embedding = None
    if isinstance(output, tuple | list):
        if len(output) != 2:
            raise Failed("outputs")
        output, embedding = output
    if not isinstance(output, torch.Tensor) or output.ndim != 2 or output.is_complex():
        raise Failed("logits")
    if output.shape[0] != batch.shape[0]:
        raise Failed("rows")
    probs = torch.softmax(output.float(), dim=1).cpu().numpy()
    if embedding is None:
        return probs, None
    if (
        not isinstance(embedding, torch.Tensor)
        or embedding.ndim < 1
        or embedding.is_complex()
        or embedding.shape[0] != batch.shape[0]
    ):
        raise Failed("embedding")
    return probs, embedding.float().flatten(1).cpu().numpy()


def _warm_up(device: torch.device, channels: int) -> None:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(_Warmup(channels).eval()), buffer)
    model = load(buffer.getvalue(), device)
    pixels = np.zeros((2, channels, 16, 16), dtype=np.float32)
    for blank in (True, False):
        _run(
            {"shape": list(pixels.shape), "blank": blank},
            bytearray(pixels.tobytes()),
            model,
            device,
        )


def _run(
    header: dict[str, Any], pixels: bytes | bytearray | mmap.mmap, model: Any, device: torch.device
) -> Any:
    shape = tuple(int(s) for s in header["shape"])
    if header.get("blank"):
        batch = torch.zeros(shape, device=device)
    else:
        count = 1
        for side in shape:
            count *= side
        array = np.frombuffer(pixels, dtype=np.float32, count=count).reshape(shape)
        batch = torch.from_numpy(array).to(device)
    return forward(model, batch)


class _Inputs:
    """The input buffer: a memfd the parent writes one batch into before it sends the header."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.map: mmap.mmap | None = None

    def get(self, size: int, nbytes: int) -> mmap.mmap:
        if not 0 < nbytes <= size:
            raise Failed("protocol")
        if self.map is None or len(self.map) != size:
            if self.map is not None:
                # A model that kept a reference to its input keeps that mapping alive.
                with contextlib.suppress(BufferError):
                    self.map.close()
            self.map = mmap.mmap(self.fd, size)
        return self.map


def serve(inp: int, out: int, inputs: _Inputs, device: torch.device) -> None:
    model = None
    while True:
        try:
            header, payload = receive(inp)
        except EOFError:
            return
        try:
            if header.get("op") == "load":
                try:
                    model = load(payload, device)
                except Exception:
                    raise Failed("load") from None
                send(out, {"ok": True})
                continue
            if header.get("op") != "run" or model is None:
                raise Failed("protocol")
            pixels: bytearray | mmap.mmap = payload
            if not header.get("blank"):
                pixels = inputs.get(int(header["shm_size"]), int(header["shm"]))
            probs, embedding = _run(header, pixels, model, device)
        except Failed as failed:
            send(out, {"ok": False, "error": failed.code})
            continue
        meta = {"ok": True, "probs": list(probs.shape)}
        parts = [np.ascontiguousarray(probs, dtype=np.float32).data]
        if embedding is not None:
            meta["embedding"] = list(embedding.shape)
            parts.append(np.ascontiguousarray(embedding, dtype=np.float32).data)
        send(out, meta, *parts)


def install_filter() -> None:
    """``seccomp_filter.install_filter``, loaded by path: this script runs outside the package."""
    spec = importlib.util.spec_from_file_location("seccomp_filter", FILTER)
    if spec is None or spec.loader is None:
        raise OSError(f"cannot load {FILTER}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.install_filter()


def main() -> None:
    """argv: reply fd, input memfd, device, torch threads, warm-up channels, memory limit."""
    out, shm, device_name, threads, channels, memory = sys.argv[1:7]
    parent = os.getppid()
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        return  # the parent is already gone
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    os.chdir("/")
    torch.set_num_threads(max(1, int(threads)))
    device = torch.device(device_name)
    _warm_up(device, int(channels))
    if int(memory) > 0:
        resource.setrlimit(resource.RLIMIT_AS, (int(memory), int(memory)))
    try:
        install_filter()
    except (OSError, AttributeError):
        send(int(out), {"ok": False, "error": "sandbox"})
        return
    send(int(out), {"ok": True})
    serve(0, int(out), _Inputs(int(shm)), device)


if __name__ == "__main__":
    main()
