"""Process entry points: every service runs as `python -m <module> api|relay|consumer|migrate`."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from .settings import ServiceSettings
from .telemetry import configure_logging, configure_tracing


class Runnable(Protocol):
    async def run(self) -> None: ...
    def stop(self) -> None: ...


def serve_api(app: Any, settings: ServiceSettings) -> None:
    configure_logging(settings.log_level)
    configure_tracing(settings.service_name)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        timeout_graceful_shutdown=10,
    )


def run_worker(settings: ServiceSettings, build: Callable[[], Awaitable[tuple[Runnable, Callable[[], Awaitable[None]]]]]) -> None:
    """Run a long-lived worker (relay, consumer) until SIGINT/SIGTERM, then clean up."""
    configure_logging(settings.log_level)
    configure_tracing(settings.service_name)

    async def main() -> None:
        worker, cleanup = await build()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        try:
            await worker.run()
        finally:
            await cleanup()

    import uvloop

    uvloop.run(main())


async def database_ready(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


def kafka_ready_check(bootstrap_servers: str, *, cache_seconds: float = 5.0) -> Callable[[], Awaitable[bool]]:
    """A cheap broker reachability check (TCP connect), cached so probes cost nothing."""
    state = {"at": 0.0, "ok": False}

    async def check() -> bool:
        loop = asyncio.get_running_loop()
        if loop.time() - state["at"] < cache_seconds:
            return bool(state["ok"])
        ok = False
        for server in bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1.0)
                writer.close()
                ok = True
                break
            except (OSError, TimeoutError, ValueError):
                continue
        state.update(at=loop.time(), ok=ok)
        return ok

    return check
