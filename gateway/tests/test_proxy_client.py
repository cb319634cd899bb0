"""The forwarding client against a real loopback server: keep-alive, bodies, chunked
answers, and a pooled connection the service has closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from gpsoc_gateway.proxy import ProxySession


class KeepAliveUpstream:
    """Answers every request on a connection (HTTP/1.1 keep-alive) until told to drop them."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.chunked = False
        self.close_after_answer = False
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.drop_connections()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def drop_connections(self) -> None:
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = {
                    k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((head[0], headers, body))
                payload = b'{"resourceType":"Patient","id":"p1"}'
                if self.chunked:
                    framing = b"transfer-encoding: chunked\r\n\r\n"
                    payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
                else:
                    framing = b"content-length: %d\r\n\r\n" % len(payload)
                writer.write(
                    b'HTTP/1.1 200 OK\r\ncontent-type: application/fhir+json\r\netag: W/"2"\r\n'
                    + framing
                    + payload
                )
                await writer.drain()
                if self.close_after_answer:
                    writer.close()
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass


@pytest.fixture
async def keep_alive() -> AsyncIterator[KeepAliveUpstream]:
    server = KeepAliveUpstream()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def session() -> AsyncIterator[ProxySession]:
    client = ProxySession(timeout=2, connect_timeout=1)
    yield client
    await client.close()


async def test_requests_reuse_one_keep_alive_connection(keep_alive, session):
    url = f"http://127.0.0.1:{keep_alive.port}/Patient?identifier=9990000018"
    for _ in range(3):
        status, headers, body = await session.request("GET", url, {"accept": "x"}, b"")
        assert status == 200 and body == b'{"resourceType":"Patient","id":"p1"}'
        assert (b"etag", b'W/"2"') in headers
    assert keep_alive.connections == 1
    line, headers, _ = keep_alive.requests[0]
    assert line == "GET /Patient?identifier=9990000018 HTTP/1.1"
    assert headers["host"] == f"127.0.0.1:{keep_alive.port}" and headers["accept"] == "x"


async def test_a_body_goes_through_with_its_length(keep_alive, session):
    body = b'{"resourceType":"Patient"}'
    url = f"http://127.0.0.1:{keep_alive.port}/Patient"
    status, _, _ = await session.request(
        "POST", url, {"content-type": "application/fhir+json"}, body
    )
    assert status == 200
    _, headers, received = keep_alive.requests[0]
    assert received == body and headers["content-length"] == str(len(body))


async def test_a_chunked_answer_is_read_whole(keep_alive, session):
    keep_alive.chunked = True
    url = f"http://127.0.0.1:{keep_alive.port}/Patient/p1"
    _, _, body = await session.request("GET", url, {}, b"")
    assert body == b'{"resourceType":"Patient","id":"p1"}'


async def test_a_pooled_connection_the_service_closed_is_replaced_for_a_read(keep_alive, session):
    url = f"http://127.0.0.1:{keep_alive.port}/Patient/p1"
    await session.request("GET", url, {}, b"")
    keep_alive.drop_connections()
    await asyncio.sleep(0.05)
    status, _, _ = await session.request("GET", url, {}, b"")
    assert status == 200 and keep_alive.connections == 2


async def test_connection_close_answers_are_not_pooled(keep_alive, session):
    keep_alive.close_after_answer = True
    url = f"http://127.0.0.1:{keep_alive.port}/Patient/p1"
    for _ in range(2):
        status, _, _ = await session.request("GET", url, {}, b"")
        assert status == 200
    assert keep_alive.connections == 2


async def test_header_values_cannot_split_the_request(keep_alive, session):
    url = f"http://127.0.0.1:{keep_alive.port}/Patient/p1"
    await session.request("GET", url, {"x-correlation-id": "a\r\nx-evil: 1"}, b"")
    _, headers, _ = keep_alive.requests[0]
    assert "x-evil" not in headers and "x-correlation-id" not in headers


def test_the_client_runs_on_uvloop_as_the_gateway_does():
    import uvloop

    async def scenario() -> tuple[int, int]:
        server = KeepAliveUpstream()
        await server.start()
        client = ProxySession(timeout=2, connect_timeout=1)
        try:
            url = f"http://127.0.0.1:{server.port}/Patient/p1"
            for _ in range(2):
                status, _, _ = await client.request("GET", url, {}, b"")
            return status, server.connections
        finally:
            await client.close()
            await server.stop()

    assert uvloop.run(scenario()) == (200, 1)
