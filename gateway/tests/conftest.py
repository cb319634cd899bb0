"""A real loopback HTTP server standing in for a service, and the gateway in-process."""

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
            self.seen_headers = {
                k.lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            if self.mode == "slow":
                await asyncio.sleep(5)
            if self.mode == "crash":
                body, status, ctype = b"Traceback (most recent call last): ...", 500, "text/plain"
            elif "/readyz" in lines[0]:
                body, status, ctype = b'{"status":"ready"}', 200, "application/json"
            else:
                body = b'{"resourceType":"Patient","id":"p1","meta":{"versionId":"1"}}'
                status, ctype = 200, "application/fhir+json"
            writer.write(
                f'HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\netag: W/"1"\r\n'
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
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
def jwks(test_stack) -> str:  # noqa: ANN001
    return str(test_stack.keys.jwks_file)


@pytest.fixture
def gateway_client(jwks: str):  # noqa: ANN201
    """`gateway_client(patient_index_url, **settings)` -> (app, client) for the gateway in-process."""

    def make(upstream_url: str, **overrides: Any) -> tuple[Any, httpx.AsyncClient]:
        options: dict[str, Any] = dict(
            patient_index_url=upstream_url,
            jwt_jwks_file=jwks,
            upstream_timeout_seconds=1.0,
            upstream_connect_timeout_seconds=0.5,
            readiness_timeout_seconds=0.5,
        )
        options.update(overrides)
        app = create_app(GatewaySettings(**options))
        return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")

    return make


@pytest.fixture
def headers(test_stack) -> dict[str, str]:  # noqa: ANN001
    return {"Authorization": f"Bearer {test_stack.keys.mint_token('gp', 'A81001')}"}


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"
