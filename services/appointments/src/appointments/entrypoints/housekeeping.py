"""Housekeeping that runs beside the relay: expired holds freed, rota windows kept rolling.

An expired hold already reads as free (searches and bookings check its expiry); the
sweep makes the stored status say so too. Each practice is visited in its own
transaction with its practice set, so row-level security applies here as everywhere.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from gpsoc_kit.uow import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncEngine

from ..adapters.repository import PracticeRegistry
from ..domain.rota import local_today
from ..service_layer import handlers

log = logging.getLogger("appointments.housekeeping")


class Housekeeper:
    def __init__(self, engine: AsyncEngine, uow_factory: Callable[[str], UnitOfWork], *,
                 interval_seconds: float, window_days: int) -> None:
        self._engine = engine
        self._uow = uow_factory
        self._interval = interval_seconds
        self._window_days = window_days
        self._extended_on: dt.date | None = None
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database away: try again next round
                log.warning("housekeeping round failed", extra={"reason": type(exc).__name__})
            try:
                await asyncio.wait_for(self._stopping.wait(), self._interval)
            except TimeoutError:
                pass

    async def run_once(self) -> dict[str, int]:
        """One round over every practice; the rolling window is extended once a day."""
        async with self._engine.connect() as conn:
            practices = await PracticeRegistry(conn).all()
        today = local_today(dt.datetime.now(dt.UTC))
        extend = self._extended_on != today
        totals = {"holds_released": 0, "slots_generated": 0}
        for practice in practices:
            async with self._uow(practice) as uow:
                totals["holds_released"] += await handlers.sweep_expired_holds(uow)
                if extend:
                    totals["slots_generated"] += await handlers.extend_rolling_window(
                        uow, window_days=self._window_days)
                await uow.commit()
        if extend:
            self._extended_on = today
        return totals
