"""Requests wait for a database connection in the event loop, never in a worker thread.

A request uses its session across several thread hops (token check, role check, route,
commit), holding one pooled connection from the first query to the commit. If every thread
blocks in the pool while the requests that hold the connections wait for a free thread,
nothing moves until the pool times out: 500s and dropped connections under load. Admitting
at most ``REQUEST_SESSIONS`` sessions per process, before any thread is taken, keeps every
admitted request runnable; the others queue here, in order, holding nothing.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dataops.db import REQUEST_SESSIONS

_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


@asynccontextmanager
async def session_slot() -> AsyncIterator[None]:
    """One of the process's request sessions, for the duration of the block."""
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(REQUEST_SESSIONS)
    async with slots:
        yield
