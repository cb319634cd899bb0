"""Run a coroutine from synchronous code, even when an event loop is already running.

devstack's public API is synchronous (the CLI, and pytest fixtures of any flavour call
it), but the drivers it uses (asyncpg, aiokafka) are async. asyncio.run() refuses to
nest inside a running loop (e.g. an async session fixture), so in that case the
coroutine runs on a private loop in a worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
