"""The platform's CapabilityStatement, merged from what each routed service declares."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
from gpsoc_kit.capability import capability_statement

from .routing import Upstream

log = logging.getLogger("gpsoc.gateway.capability")


class CapabilityCache:
    """Each service's /metadata, fetched lazily and refreshed every few minutes."""

    def __init__(self, upstreams: list[Upstream], *, refresh_seconds: float = 300.0) -> None:
        self._upstreams = upstreams
        self._refresh = refresh_seconds
        self._statements: dict[str, dict[str, Any]] = {}
        self._fetched_at = 0.0

    async def statement(self, client: httpx.AsyncClient, base_url: str) -> dict[str, Any]:
        if time.monotonic() - self._fetched_at > self._refresh or len(self._statements) < len(
            self._upstreams
        ):
            await self._refresh_all(client)
        resources: list[dict[str, Any]] = []
        for upstream in self._upstreams:
            statement = self._statements.get(upstream.name)
            if statement is None:
                continue
            for rest in statement.get("rest", []):
                resources += [
                    r for r in rest.get("resource", []) if r.get("type") in upstream.resource_types
                ]
        merged = capability_statement("OpenGPSoC", "openGPSoC FHIR R4 API", [], base_url=base_url)
        merged["rest"][0]["resource"] = sorted(resources, key=lambda r: r["type"])
        return merged

    async def _refresh_all(self, client: httpx.AsyncClient) -> None:
        async def fetch(upstream: Upstream) -> None:
            try:
                response = await client.get(f"{upstream.base_url}/metadata", timeout=3.0)
                response.raise_for_status()
                self._statements[upstream.name] = response.json()
            except (httpx.HTTPError, ValueError):
                # Keep the last good statement; a service that never answered is left out.
                log.warning("could not fetch capabilities", extra={"upstream": upstream.name})

        await asyncio.gather(*(fetch(u) for u in self._upstreams))
        self._fetched_at = time.monotonic()
