"""The seccomp filter of the model sandbox: standard library only, loaded by path.

``install_filter`` makes every later open, socket, exec, signal to another process or limit
change fail with EPERM, on all threads of the process. It needs no privilege (it sets
PR_SET_NO_NEW_PRIVS first), so it works for root and unprivileged users alike. libseccomp
(Debian: libseccomp2) builds the BPF program for the machine's architecture.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno

_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_ATTR_NNP = 3
_ATTR_TSYNC = 4
_PR_SET_NO_NEW_PRIVS = 38

DENIED_SYSCALLS = (
    # files: every way to open, create or change a path
    "open", "openat", "openat2", "creat", "open_by_handle_at", "name_to_handle_at",
    "open_tree", "fsopen", "fsmount", "fsconfig", "fspick", "move_mount", "mount",
    "mount_setattr", "umount2", "pivot_root", "chroot", "chdir", "fchdir", "truncate",
    "ftruncate", "fallocate",
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
