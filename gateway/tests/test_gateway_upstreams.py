"""The gateway in-process against upstreams that fail: answers are always OperationOutcomes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gpsoc_gateway.app import create_app
from gpsoc_gateway.config import GatewaySettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeUpstream:
    """A real HTTP server on loopback that answers slowly, brokenly or well, as told."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mode = "ok"
        self.seen_headers: dict[str, str] = {}
        self._server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> FakeUpstream:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            lines = request.decode("latin-1").split("\r\n")
            self.seen_headers = {k.lower(): v.strip() for k, _, v in
                                 (line.partition(":") for line in lines[1:] if line)}
            if self.mode == "slow":
                await asyncio.sleep(5)
            if self.mode == "crash":
                body, status, ctype = b"Traceback (most recent call last): ...", 500, "text/plain"
            elif "/readyz" in lines[0]:
                body, status, ctype = b'{"status":"ready"}', 200, "application/json"
            else:
                body = b'{"resourceType":"Patient","id":"p1","meta":{"versionId":"1"}}'
                status, ctype = 200, "application/fhir+json"
            writer.write(f"HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\netag: W/\"1\"\r\n"
                         f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as server:
        yield server


@pytest.fixture
def jwks(tmp_path, test_stack) -> str:  # noqa: ANN001
    return str(test_stack.keys.jwks_file)


async def gateway_client(upstream_url: str, jwks: str) -> tuple[Any, httpx.AsyncClient]:
    app = create_app(GatewaySettings(patient_index_url=upstream_url, jwt_jwks_file=jwks,
                                     upstream_timeout_seconds=1.0,
                                     upstream_connect_timeout_seconds=0.5,
                                     readiness_timeout_seconds=0.5))
    return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


@pytest.fixture
def headers(test_stack) -> dict[str, str]:  # noqa: ANN001
    return {"Authorization": f"Bearer {test_stack.keys.mint_token('gp', 'A81001')}"}


async def test_a_healthy_upstream_gets_the_token_trace_and_request_id(upstream, jwks, headers):
    app, client = await gateway_client(f"http://127.0.0.1:{upstream.port}", jwks)
    async with app.router.lifespan_context(app), client:
        response = await client.get("/fhir/R4/Patient/p1", headers=headers)
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"1"'
    assert upstream.seen_headers["authorization"] == headers["Authorization"]
    assert upstream.seen_headers["x-request-id"] == response.headers["x-request-id"]


async def test_an_unreachable_upstream_answers_502_operation_outcome(jwks, headers):
    app, client = await gateway_client(f"http://127.0.0.1:{free_port()}", jwks)
    async with app.router.lifespan_context(app), client:
        response = await client.get("/fhir/R4/Patient/p1", headers=headers)
        ready = await client.get("/readyz")
    assert response.status_code == 502
    assert response.json()["resourceType"] == "OperationOutcome"
    assert ready.status_code == 503 and ready.json()["checks"]["patient-index"] == "unavailable"


async def test_a_slow_upstream_answers_504_operation_outcome(upstream, jwks, headers):
    upstream.mode = "slow"
    app, client = await gateway_client(f"http://127.0.0.1:{upstream.port}", jwks)
    async with app.router.lifespan_context(app), client:
        response = await client.get("/fhir/R4/Patient/p1", headers=headers)
    assert response.status_code == 504
    assert response.json()["issue"][0]["code"] == "timeout"


async def test_an_upstream_stack_trace_never_reaches_the_client(upstream, jwks, headers):
    upstream.mode = "crash"
    app, client = await gateway_client(f"http://127.0.0.1:{upstream.port}", jwks)
    async with app.router.lifespan_context(app), client:
        response = await client.get("/fhir/R4/Patient/p1", headers=headers)
    assert response.status_code == 502
    assert "Traceback" not in response.text
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_no_token_is_refused_before_any_upstream_call(upstream, jwks):
    app, client = await gateway_client(f"http://127.0.0.1:{upstream.port}", jwks)
    async with app.router.lifespan_context(app), client:
        response = await client.get("/fhir/R4/Patient/p1")
    assert response.status_code == 401
    assert upstream.seen_headers == {}
