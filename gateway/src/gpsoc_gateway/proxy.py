"""Forwarding a FHIR request to the service that owns its resource type.

The forwarding client is a small HTTP/1.1 client of its own: pooled keep-alive
connections per upstream, requests written in one piece, responses parsed by httptools
(uvicorn's parser, in C). A general-purpose client (aiohttp, httpx) spends several times
more per request on what a proxy between our own services never needs: cookies,
redirects, URL objects, per-request timer handles, decompression.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from urllib.parse import urlsplit

import httptools
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
_RETURNED = frozenset(name.encode() for name in RETURNED_RESPONSE_HEADERS)
# Methods a request may be sent again for, when a pooled connection turned out closed
# before it answered (the service closed it idle as the request went out).
_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE"})
# Idle connections older than this are not reused: uvicorn closes them after 5 s.
IDLE_SECONDS = 3.0
MAX_CONNECTIONS_PER_UPSTREAM = 100


def new_client(*, timeout: float, connect_timeout: float) -> httpx.AsyncClient:
    """For the gateway's own, rare calls (readiness, capabilities, $everything)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
        follow_redirects=False,
    )


class UpstreamClosed(ConnectionError):
    """The connection closed before a complete response arrived."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its response parsed as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._keep_alive = False
        self.got_bytes = False

    @property
    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamClosed(f"malformed response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(UpstreamClosed("the upstream closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    async def exchange(self, request: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        assert self.transport is not None
        self.got_bytes = False
        self._headers = []
        self._body = []
        self._keep_alive = False
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        try:
            await self._waiter
        finally:
            self._waiter = None
        if not self._keep_alive:
            self.close()
        return self._parser.get_status_code(), self._headers, b"".join(self._body)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Upstream:
    """Keep-alive connections to one host:port, the most recently used first."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.host_header = f"{host}:{port}".encode("latin-1")
        self.idle: deque[_Connection] = deque()
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS_PER_UPSTREAM)

    def pooled(self) -> _Connection | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if conn.usable and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.close()
        return None

    async def connect(self, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(_Connection, self.host, self.port, ssl=self.tls), timeout
        )
        return conn

    def give_back(self, conn: _Connection) -> None:
        if not conn.usable:
            return
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


class ProxySession:
    """The forwarding client: pooled keep-alive connections to every service."""

    def __init__(self, *, timeout: float, connect_timeout: float) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._upstreams: dict[tuple[str, str], _Upstream] = {}
        self._tls: ssl.SSLContext | None = None

    def _upstream(self, scheme: str, netloc: str) -> _Upstream:
        upstream = self._upstreams.get((scheme, netloc))
        if upstream is None:
            split = urlsplit(f"{scheme}://{netloc}")
            tls = None
            if scheme == "https":
                tls = self._tls = self._tls or ssl.create_default_context()
            elif scheme != "http":
                raise ValueError(f"unsupported upstream scheme {scheme!r}")
            port = split.port or (443 if scheme == "https" else 80)
            upstream = _Upstream(split.hostname or "localhost", port, tls)
            self._upstreams[(scheme, netloc)] = upstream
        return upstream

    async def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        scheme, _, rest = url.partition("://")
        netloc, _, target = rest.partition("/")
        upstream = self._upstream(scheme, netloc)
        head = [f"{method} /{target} HTTP/1.1".encode("latin-1"), b"host: " + upstream.host_header]
        for name, value in headers.items():
            if "\r" in value or "\n" in value:  # never a header split, whatever came in
                continue
            head.append(f"{name}: {value}".encode("latin-1"))
        if body or method in ("POST", "PUT", "PATCH"):
            head.append(b"content-length: %d" % len(body))
        message = b"\r\n".join(head) + b"\r\n\r\n" + body
        async with upstream.slots, asyncio.timeout(self.timeout):
            conn = upstream.pooled()
            while True:
                fresh = conn is None
                if conn is None:
                    conn = await upstream.connect(self.connect_timeout)
                try:
                    answer = await conn.exchange(message)
                except UpstreamClosed:
                    conn.close()
                    # A pooled connection the service had just closed: try a new one,
                    # unless the request might have been acted on.
                    if fresh or conn.got_bytes or method not in _IDEMPOTENT:
                        raise
                    conn = None
                    continue
                except BaseException:
                    conn.close()  # a timeout or cancellation leaves the exchange unfinished
                    raise
                upstream.give_back(conn)
                return answer

    async def close(self) -> None:
        for upstream in self._upstreams.values():
            upstream.close()
        self._upstreams.clear()


def new_proxy_session(*, timeout: float, connect_timeout: float) -> ProxySession:
    """The forwarding client: pooled keep-alive connections to every service."""
    return ProxySession(timeout=timeout, connect_timeout=connect_timeout)


async def forward(
    session: ProxySession,
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
        status, response_headers, content = await session.request(method, url, outgoing, body)
    except TimeoutError:
        log.warning("upstream timed out", extra={"upstream": upstream_name})
        raise FhirError(
            504, f"The {upstream_name} service did not answer in time", code="timeout"
        ) from None
    except OSError:
        log.warning("upstream unreachable", extra={"upstream": upstream_name})
        raise FhirError(
            502, f"The {upstream_name} service is unavailable", code="transient"
        ) from None
    content_type = b""
    returned = []
    for name, value in response_headers:
        if name in _RETURNED:
            returned.append((name, value))
            if name == b"content-type":
                content_type = value
    if status >= 500 and not content_type.startswith(b"application/fhir+json"):
        # Whatever went wrong upstream, the client gets an OperationOutcome, not a stack trace.
        raise FhirError(502, f"The {upstream_name} service failed", code="exception")
    return status, returned, content
