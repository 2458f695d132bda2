"""The process that runs an untrusted TorchScript model (started by ``dataops.scoring.sandbox``).

It is started as a script with ``python -I`` and a scrubbed environment, and imports only the
standard library, numpy and torch, so nothing of the service (settings, secrets, database) is
ever in its memory. Before it reads the model it warms torch up on a model of its own, then
installs a seccomp filter on every thread: from then on opening files, creating sockets,
executing programs, signalling or tracing other processes and changing its limits fail with
EPERM. TorchScript runs code while loading (``__setstate__``), so the filter comes first.

Protocol, on fd 0 (requests) and the fd named on the command line (replies): a 4-byte
big-endian length, a JSON header, then ``nbytes`` raw bytes. Errors are short codes, never the
model's messages or values: the parent turns a code into a message that says what was expected.
fd 1 and 2 point at /dev/null, so a model's ``print`` reaches nobody.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import io
import json
import os
import resource
import struct
import sys
import warnings
from typing import Any

import numpy as np
import torch

_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_ATTR_NNP = 3
_ATTR_TSYNC = 4
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_SIGKILL = 9

DENIED_SYSCALLS = (
    # files: every way to open, create or change a path
    "open", "openat", "openat2", "creat", "open_by_handle_at", "name_to_handle_at",
    "open_tree", "fsopen", "fsmount", "fsconfig", "fspick", "move_mount", "mount",
    "mount_setattr", "umount2", "pivot_root", "chroot", "chdir", "fchdir", "truncate",
    "link", "linkat", "symlink", "symlinkat", "unlink", "unlinkat", "rename", "renameat",
    "renameat2", "mkdir", "mkdirat", "rmdir", "mknod", "mknodat", "chmod", "fchmodat",
    "fchmodat2", "chown", "lchown", "fchownat", "utime", "utimes", "utimensat", "futimesat",
    "inotify_init", "inotify_init1", "fanotify_init", "uselib", "acct", "swapon", "swapoff",
    "quotactl", "quotactl_fd",
    # io_uring performs opens and connects outside these checks
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    # network
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    # other programs and processes
    "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "kill",
    "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open", "pidfd_getfd",
    "pidfd_send_signal", "kcmp", "setns", "unshare", "process_madvise",
    # limits and the kernel
    "setrlimit", "prlimit64", "setpriority", "perf_event_open", "bpf", "userfaultfd",
    "keyctl", "add_key", "request_key", "init_module", "finit_module", "delete_module",
    "kexec_load", "kexec_file_load", "reboot", "syslog", "personality", "seccomp",
)  # fmt: skip
"""Calls that fail with EPERM once the filter is installed."""

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


def install_filter() -> None:
    """Deny ``DENIED_SYSCALLS`` with EPERM on all threads; raises OSError if that fails."""
    path = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    lib = ctypes.CDLL(path, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    ctx = lib.seccomp_init(_ALLOW)
    if not ctx:
        raise OSError(errno.ENOMEM, "seccomp_init failed")
    try:
        for attr in (_ATTR_NNP, _ATTR_TSYNC):
            if (rc := lib.seccomp_attr_set(ctx, attr, 1)) != 0:
                raise OSError(-rc, f"seccomp_attr_set({attr}) failed")
        for name in DENIED_SYSCALLS:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                continue  # not a call on this architecture (e.g. open on arm64)
            if (rc := lib.seccomp_rule_add(ctx, _ERRNO | errno.EPERM, nr, 0)) != 0:
                raise OSError(-rc, f"seccomp_rule_add({name}) failed")
        if (rc := lib.seccomp_load(ctx)) != 0:
            raise OSError(-rc, "seccomp_load failed")
    finally:
        lib.seccomp_release(ctx)


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
        model = torch.jit.load(io.BytesIO(data), map_location=device)
    model.eval()
    return model


class Failed(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def forward(model: Any, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
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
    header: dict[str, Any], payload: bytes | bytearray, model: Any, device: torch.device
) -> Any:
    shape = tuple(int(s) for s in header["shape"])
    if header.get("blank"):
        batch = torch.zeros(shape, device=device)
    else:
        batch = torch.from_numpy(np.frombuffer(payload, dtype=np.float32).reshape(shape))
        batch = batch.to(device)
    return forward(model, batch)


def serve(inp: int, out: int, device: torch.device) -> None:
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
            probs, embedding = _run(header, payload, model, device)
        except Failed as failed:
            send(out, {"ok": False, "error": failed.code})
            continue
        meta = {"ok": True, "probs": list(probs.shape)}
        parts = [np.ascontiguousarray(probs, dtype=np.float32).data]
        if embedding is not None:
            meta["embedding"] = list(embedding.shape)
            parts.append(np.ascontiguousarray(embedding, dtype=np.float32).data)
        send(out, meta, *parts)


def main() -> None:
    """argv: reply fd, device, torch threads, channels of the warm-up input, memory limit."""
    out, device_name, threads, channels, memory = sys.argv[1:6]
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
    except OSError:
        send(int(out), {"ok": False, "error": "sandbox"})
        return
    send(int(out), {"ok": True})
    serve(0, int(out), device)


if __name__ == "__main__":
    main()
