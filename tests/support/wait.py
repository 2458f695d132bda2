"""One way for tests to wait for something: poll a condition with a deadline, never a fixed sleep.

A timeout fails the test with what was awaited (and the last value seen), so a slow machine
gives a clear message instead of a flaky assertion somewhere later.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None],
    what: str,
    *,
    timeout: float = 60.0,
    interval: float = 0.05,
) -> T:
    """Call ``probe`` until it returns something truthy and return that; fail after ``timeout``
    seconds naming ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})"
            )
        time.sleep(interval)
