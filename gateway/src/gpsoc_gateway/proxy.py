"""Forwarding a FHIR request to the service that owns its resource type."""

from __future__ import annotations

import logging

import aiohttp
import httpx
from gpsoc_kit.fhir import FhirError
from gpsoc_kit.telemetry import inject_headers, request_id_var

log = logging.getLogger("gpsoc.gateway.proxy")

# Request headers a service needs; everything else (cookies, hop-by-hop) stays here.
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        "authorization",
        "content-type",
        "accept",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "prefer",
        "idempotency-key",
        "x-correlation-id",
    }
)
# Response headers a client needs back.
RETURNED_RESPONSE_HEADERS = frozenset(
    {
        "content-type",
        "etag",
        "location",
        "last-modified",
        "retry-after",
        "content-location",
    }
)


def new_client(*, timeout: float, connect_timeout: float) -> httpx.AsyncClient:
    """For the gateway's own, rare calls (readiness, capabilities, $everything)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
        follow_redirects=False,
    )


def new_proxy_session(*, timeout: float, connect_timeout: float) -> aiohttp.ClientSession:
    """The forwarding client: pooled keep-alive connections to every service."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=200, limit_per_host=100, ttl_dns_cache=300),
        timeout=aiohttp.ClientTimeout(total=timeout, connect=connect_timeout),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
    )


async def forward(
    session: aiohttp.ClientSession,
    *,
    upstream_name: str,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Send the request on; upstream failures become 502/504 OperationOutcomes."""
    outgoing = {k: v for k, v in headers.items() if k in FORWARDED_REQUEST_HEADERS}
    if (request_id := request_id_var.get()) is not None:
        outgoing["x-request-id"] = request_id
    inject_headers(outgoing)
    try:
        async with session.request(
            method, url, headers=outgoing, data=body or None, allow_redirects=False
        ) as response:
            content = await response.read()
            status = response.status
            content_type = response.headers.get("content-type", "")
            returned = [
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in response.headers.items()
                if k.lower() in RETURNED_RESPONSE_HEADERS
            ]
    except TimeoutError:
        log.warning("upstream timed out", extra={"upstream": upstream_name})
        raise FhirError(
            504, f"The {upstream_name} service did not answer in time", code="timeout"
        ) from None
    except aiohttp.ClientError:
        log.warning("upstream unreachable", extra={"upstream": upstream_name})
        raise FhirError(
            502, f"The {upstream_name} service is unavailable", code="transient"
        ) from None
    if status >= 500 and not content_type.startswith("application/fhir+json"):
        # Whatever went wrong upstream, the client gets an OperationOutcome, not a stack trace.
        raise FhirError(502, f"The {upstream_name} service failed", code="exception")
    return status, returned, content
