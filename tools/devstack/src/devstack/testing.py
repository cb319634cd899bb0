"""The local stack as the test suite sees it (no pytest imports: the chassis' pytest
plugin wraps this in fixtures).

    stack = TestStack(); stack.start()
    db = stack.database("patient_index")       # ServiceDatabase: owner_url, app_url, superuser_url
    stack.kafka_bootstrap                       # "127.0.0.1:19092"
    token = stack.keys.mint_token("gp", "A81001")
    handle = stack.start_platform(("patient-index",))   # real gateway on the test ports
    ...
    stack.stop_platform(); stack.stop()

It uses the "test" profile (own state dir, ports 15433/19092/18080/18101...), so it runs
next to a `make run`. start() reuses a stack that is already up (e.g. `infra up
--profile test`) and stop() stops only what start() started.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from devstack import tokens
from devstack.config import StackConfig
from devstack.kafka import KafkaBroker
from devstack.keys import DevKeys
from devstack.platform import GATEWAY, Platform, platform_topics, service_named
from devstack.postgres import PostgresCluster, ServiceDatabase
from devstack.procs import Supervisor


class TestKeys:
    """The test profile's development signing key, for tokens with any claims."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, keys: DevKeys) -> None:
        self.dev_keys = keys

    @property
    def kid(self) -> str:
        return self.dev_keys.kid

    @property
    def jwks(self) -> dict[str, Any]:
        return self.dev_keys.jwks

    @property
    def jwks_file(self):
        return self.dev_keys.jwks_file

    @property
    def private_key(self):
        return self.dev_keys.private_key

    def mint(self, claims: dict[str, Any], *, headers: dict[str, Any] | None = None) -> str:
        return self.dev_keys.mint(claims, headers=headers)

    def claims_for(self, role: str, practice: str) -> dict[str, Any]:
        """The standard claims of a demo user, to alter before mint()."""
        return tokens.claims_for(role, practice)

    def mint_token(
        self, role: str, practice: str, *, lifetime: timedelta = tokens.DEFAULT_LIFETIME
    ) -> str:
        return tokens.mint_token(role, practice, lifetime=lifetime, keys=self.dev_keys)


@dataclass
class PlatformHandle:
    gateway_url: str  # http://127.0.0.1:18080
    service_urls: dict[str, str]  # service name -> its api's base URL
    databases: dict[str, ServiceDatabase]
    platform: Platform = field(repr=False)

    @property
    def fhir_base(self) -> str:
        return f"{self.gateway_url}/fhir/R4"

    def stop(self) -> None:
        self.platform.stop()


class TestStack:
    __test__ = False

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig.for_profile("test")
        self.postgres = PostgresCluster(self.config)
        self.kafka = KafkaBroker(self.config)
        self._keys: TestKeys | None = None
        self._platform: PlatformHandle | None = None

    def start(self) -> TestStack:
        """PostgreSQL and Kafka up (reused if running), the platform's topics created."""
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.postgres.ensure_started()
        self.kafka.ensure_started()
        self.kafka.create_topics(platform_topics())
        return self

    def stop(self) -> None:
        """Stop the platform if any, then whatever start() itself started.

        With GPSOC_KEEP_INFRA=1 PostgreSQL and Kafka are left running, so that several
        test sessions sharing one test stack (or a developer iterating) never stop the
        infrastructure under each other.
        """
        try:
            self.stop_platform()
        finally:
            if os.environ.get("GPSOC_KEEP_INFRA") != "1":
                try:
                    self.kafka.stop()
                finally:
                    self.postgres.stop()

    def __enter__(self) -> TestStack:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ----- infrastructure -----------------------------------------------------------
    def database(self, db_name: str) -> ServiceDatabase:
        """Provision (idempotently) the service database and return its URLs."""
        return self.postgres.provision_service(db_name)

    def reset_database(self, db_name: str) -> ServiceDatabase:
        """Drop and recreate the database empty, with the same roles and grants."""
        return self.postgres.reset_database(db_name)

    def superuser_url(self, db_name: str = "postgres") -> str:
        return self.postgres.superuser_url(db_name)

    @property
    def kafka_bootstrap(self) -> str:
        return self.config.kafka_bootstrap

    def create_topics(self, topics: dict[str, int]) -> None:
        self.kafka.create_topics(topics)

    @property
    def keys(self) -> TestKeys:
        if self._keys is None:
            self._keys = TestKeys(DevKeys.for_config(self.config))
        return self._keys

    # ----- platform -----------------------------------------------------------------
    def start_platform(
        self,
        services: Sequence[str] = ("patient-index",),
        *,
        gateway: bool = True,
        seed_demo: bool = False,
        ready_timeout: float = 120,
    ) -> PlatformHandle:
        """Fresh databases, migrations, then the services' processes and the gateway on
        the test ports, ready (/readyz 200) when this returns."""
        if self._platform is not None:
            raise RuntimeError("the platform is already started; stop_platform() first")
        _ = self.keys  # the JWKS file must exist before the services read it
        chosen = tuple(service_named(name) for name in services)
        platform = Platform(
            self.config,
            self.postgres,
            Supervisor(self.config.logs_dir, echo=False),
            services=chosen,
            gateway=GATEWAY if gateway else None,
            skip_missing=os.environ.get("GPSOC_SKIP_MISSING") == "1",
            say=lambda message: None,
        )
        try:
            platform.provision(reset=True)
            platform.migrate()
            platform.start_processes()
            platform.wait_ready(ready_timeout)
            if seed_demo:
                platform.seed_demo(force=True)
        except BaseException:
            platform.stop()
            raise
        self._platform = PlatformHandle(
            gateway_url=platform.gateway_url,
            service_urls={s.name: platform.service_url(s.name) for s in platform.services},
            databases=dict(platform.databases),
            platform=platform,
        )
        return self._platform

    def stop_platform(self) -> None:
        if self._platform is not None:
            handle, self._platform = self._platform, None
            handle.stop()
