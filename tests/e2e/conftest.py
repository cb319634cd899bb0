"""End-to-end fixtures: the real platform as processes, reached only through the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest


@pytest.fixture(scope="session")
async def gateway(platform: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.fhir_base, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def token(test_stack: Any):  # noqa: ANN201
    """`token(role, practice)` -> Authorization headers for a demo user."""

    def headers(role: str = "gp", practice: str = "A81001") -> dict[str, str]:
        return {
            "Authorization": f"Bearer {test_stack.keys.mint_token(role, practice)}",
            "Content-Type": "application/fhir+json",
        }

    return headers
