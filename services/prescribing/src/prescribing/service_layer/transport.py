"""The EPS transport, with Spine SIMULATED.

A real transport would POST each message to the EPS FHIR API ($process-message) over
the Spine secure proxy with the prescriber's smartcard-backed (CIS2) token, and record
Spine's response. That connection is out of reach here, so this transport takes each
pending message, checks it is well formed (a message Bundle with a valid short-form
prescription id), marks it sent and stores a response saying it was simulated.
Replace `SimulatedSpine.send` to connect a real one; the outbox handling stays.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..adapters.repository import EpsOutbox
from ..domain.eps import is_valid_short_form_id

log = logging.getLogger("prescribing.transport")


class SimulatedSpine:
    """Stands in for Spine: accepts a well-formed prescription-order message."""

    def send(self, prescription_id: str, message: dict[str, Any]) -> dict[str, Any]:
        header = (message.get("entry") or [{}])[0].get("resource", {})
        accepted = (message.get("type") == "message"
                    and header.get("eventCoding", {}).get("code") == "prescription-order"
                    and is_valid_short_form_id(prescription_id))
        return {"simulated": True, "status": "accepted" if accepted else "rejected",
                "prescriptionId": prescription_id,
                "receivedAt": dt.datetime.now(dt.UTC).isoformat()}


class EpsTransport:
    """Sends pending EPS messages; several replicas may run (rows are claimed with SKIP LOCKED)."""

    def __init__(self, engine: AsyncEngine, *, spine: SimulatedSpine | None = None,
                 poll_seconds: float = 1.0, batch_size: int = 50) -> None:
        self._engine = engine
        self._spine = spine or SimulatedSpine()
        self._poll = poll_seconds
        self._batch = batch_size
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                sent = await self.send_pending()
            except Exception as exc:  # noqa: BLE001 - database away: retry on the next poll
                log.warning("EPS transport round failed", extra={"reason": type(exc).__name__})
                sent = 0
            if sent < self._batch:
                try:
                    await asyncio.wait_for(self._stopping.wait(), self._poll)
                except TimeoutError:
                    pass

    async def send_pending(self) -> int:
        async with self._engine.begin() as conn:
            outbox = EpsOutbox(conn)
            rows = await outbox.claim_pending(self._batch)
            for row in rows:
                response = self._spine.send(row.prescription_id, row.message)
                await outbox.mark_sent(row.id, response, dt.datetime.now(dt.UTC))
            if rows:
                log.info("EPS messages sent to simulated Spine", extra={"count": len(rows)})
            return len(rows)
