"""Waiting for event-driven flows in tests: bounded polling, never a fixed sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 45.0, interval: float = 0.5
) -> Any:
    """Poll `check` until it returns something truthy; events take a moment to flow."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, "the event flow did not complete"
        await asyncio.sleep(interval)
