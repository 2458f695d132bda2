"""Run the `dataops` command as a user would: in this process by default, or as a real
`python -m dataops` subprocess.

In process, the command runs exactly as the console script runs it (`dataops.cli.main`'s error
mapping and exit codes, stdin empty, cwd the repository, the environment the subprocess would
get, Rich at the width a non-terminal gets) and answers the same `CompletedProcess`, without
the second or so of imports a new interpreter pays. A real process is used when the test asks
(``process=True``: signals, stdin, startup and import checks) and whenever a broker is
configured: `workers.app` binds the broker URL when first imported, so only a fresh process
sends to the test's own broker.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 300,
    process: bool = False,
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    if process or full_env.get("DATAOPS_BROKER_URL"):
        proc = _run_process(args, full_env, timeout)
    else:
        proc = _run_in_process(args, full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"dataops {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def run_json(*args: str, env: dict[str, str] | None = None) -> Any:
    proc = run_cli(*args, "--json", env=env)
    return json.loads(proc.stdout)


def _run_process(
    args: tuple[str, ...], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataops", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _run_in_process(args: tuple[str, ...], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    from dataops.cli import app
    from dataops.cli.errors import handle

    out, err = io.StringIO(), io.StringIO()
    with _process_state(env), redirect_stdout(out), redirect_stderr(err):
        try:
            app(args=list(args), prog_name="dataops")
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc)
        except (Exception, KeyboardInterrupt) as exc:  # what `dataops.cli.main` maps
            try:
                code = handle(exc)
            except SystemExit as exit_:
                code = _exit_code(exit_)
            except BaseException:  # an unmapped error: the interpreter's traceback, exit 1
                traceback.print_exc()
                code = 1
    return subprocess.CompletedProcess(
        ["dataops", *args], code, stdout=out.getvalue(), stderr=err.getvalue()
    )


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)  # sys.exit("message") prints it and exits 1
    return 1


@contextmanager
def _process_state(env: dict[str, str]) -> Iterator[None]:
    """What a fresh process would have: this environment, cwd, empty stdin, no cached settings,
    stores or engines, and consoles sized like a non-terminal's (80 x 25 unless COLUMNS/LINES)."""
    from dataops.cli import output
    from dataops.config import reset_settings
    from dataops.db import dispose_engines
    from dataops.storage import get_store

    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_stdin = sys.stdin
    consoles = [output.console, output.err_console]
    saved_sizes = [(c._width, c._height) for c in consoles]
    os.environ.clear()
    os.environ.update(env)
    os.environ.setdefault("COLUMNS", "80")
    os.environ.setdefault("LINES", "25")
    for console in consoles:
        console._width = console._height = None  # read COLUMNS/LINES at each print
    os.chdir(REPO)
    sys.stdin = io.StringIO("")

    def fresh() -> None:
        reset_settings()
        get_store.cache_clear()
        dispose_engines()

    fresh()
    try:
        yield
    finally:
        fresh()
        sys.stdin = saved_stdin
        os.chdir(saved_cwd)
        for console, (width, height) in zip(consoles, saved_sizes, strict=True):
            console._width, console._height = width, height
        os.environ.clear()
        os.environ.update(saved_env)
