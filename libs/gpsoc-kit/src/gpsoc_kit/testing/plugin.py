"""pytest plugin (enabled by `-p gpsoc_kit.testing.plugin`): real-database fixtures.

Tests that ask for `test_stack` (directly or through another fixture) get the
local stack's PostgreSQL and Kafka, started on first use and stopped at the end
of the session if this session started them. Such tests are marked
`integration` automatically, so `pytest -m "not integration"` runs the unit tier alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

STACK_FIXTURES = {"test_stack", "service_database", "platform"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if STACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def test_stack() -> Iterator[Any]:
    from devstack.testing import TestStack

    stack = TestStack()
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def service_database(test_stack: Any) -> Callable[[str, Path], Any]:
    """`service_database(db_name, service_dir)`: a fresh database, migrated by Alembic.

    Migrated once per session and name; tests isolate themselves by practice
    codes and ids of their own rather than by truncation.
    """
    from gpsoc_kit.migrations import upgrade

    prepared: dict[str, Any] = {}

    def prepare(db_name: str, service_dir: Path) -> Any:
        if db_name not in prepared:
            database = test_stack.reset_database(db_name)
            upgrade(service_dir, database.owner_url)
            prepared[db_name] = database
        return prepared[db_name]

    return prepare


@pytest.fixture(scope="session")
def platform(test_stack: Any) -> Iterator[Any]:
    """The whole platform (every service and the gateway as processes) on the test ports,
    with the demo data loaded, as `make run` has it."""
    from devstack.platform import SERVICES

    handle = test_stack.start_platform(tuple(s.name for s in SERVICES), seed_demo=True)
    try:
        yield handle
    finally:
        test_stack.stop_platform()


def run_sync(fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking set-up (Alembic, process start) from async tests without blocking the loop."""
    return asyncio.to_thread(fn, *args)
