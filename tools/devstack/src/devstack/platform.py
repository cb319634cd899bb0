"""What the platform runs, and how devstack runs it.

The service CONTRACT (each service implements it with the chassis):
  python -m <module> api | relay | consumer | migrate      (patient-index also: seed-demo --file F)
with this environment:
  DATABASE_URL             the app role's URL (not owner, not BYPASSRLS: RLS applies)
  MIGRATION_DATABASE_URL   the owner role's URL; given to `migrate` only
  KAFKA_BOOTSTRAP_SERVERS, HOST=127.0.0.1, PORT, LOG_LEVEL=INFO
  JWT_ISSUER, JWT_AUDIENCE, JWT_JWKS_FILE
  OTEL_SERVICE_NAME=<name>, OTEL_TRACES_EXPORTER=none
The gateway (python -m gpsoc_gateway api) gets the JWT variables, PORT, and
<PORT_ENV>_URL for every service (e.g. PATIENT_INDEX_URL=http://127.0.0.1:8101).
Every api answers GET /healthz (alive) and GET /readyz (200 once ready).

Adding a service is one Service(...) entry below plus its port in devstack.config.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from devstack import demo
from devstack.config import StackConfig
from devstack.kafka import KafkaBroker
from devstack.keys import DevKeys
from devstack.postgres import PostgresCluster, ServiceDatabase
from devstack.procs import ProcessFailed, Supervisor, wait_http_ok
from devstack.topics import DLQ_PARTITIONS, EVENT_PARTITIONS, TOPICS, dlq_topic

READY_TIMEOUT = 120.0  # first start on a 2-core machine imports a lot of Python


@dataclass(frozen=True)
class Service:
    name: str  # also OTEL_SERVICE_NAME and the log file prefix
    module: str  # python -m <module> <command>
    database: str  # its own database; roles <database>_owner / <database>_app
    port_env: str  # key in devstack.config.SERVICE_PORTS; gateway gets <port_env>_URL
    processes: tuple[str, ...] = ("api", "relay", "consumer")
    seeds_demo: bool = False  # loads the demo dataset with `seed-demo --file`
    # Topics only this service uses (beyond devstack.topics.TOPICS), name -> partitions.
    # Auto-creation is off, so devstack creates them, each with its `<topic>.dlq`.
    topics: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Gateway:
    module: str = "gpsoc_gateway"
    name: str = "gateway"
    port_env: str = "GATEWAY"


SERVICES: tuple[Service, ...] = (
    Service(
        name="patient-index",
        module="patient_index",
        database="patient_index",
        port_env="PATIENT_INDEX",
        seeds_demo=True,
        topics=(("pds.notifications.v1", EVENT_PARTITIONS),),  # PDS change notifications in
    ),
    # Its seed loads rotas; its patient projection fills from patient.events.v1.
    Service(
        name="appointments",
        module="appointments",
        database="appointments",
        port_env="APPOINTMENTS",
        seeds_demo=True,
    ),
    # Its relay process also sends EPS messages to the simulated Spine.
    Service(
        name="prescribing",
        module="prescribing",
        database="prescribing",
        port_env="PRESCRIBING",
        seeds_demo=True,
    ),
    # Consultations and the clinical record; patients arrive through patient.events.v1.
    Service(
        name="clinical-notes",
        module="clinical_notes",
        database="clinical_notes",
        port_env="CLINICAL_NOTES",
    ),
    # The append-only, hash-chained store of every service's audit.events.v1.
    Service(name="audit", module="audit_trail", database="audit", port_env="AUDIT"),
)
GATEWAY = Gateway()


class PlatformError(RuntimeError):
    pass


def service_named(name: str) -> Service:
    for service in SERVICES:
        if service.name == name:
            return service
    raise PlatformError(f"unknown service {name!r}; known: {', '.join(s.name for s in SERVICES)}")


def platform_topics(services: Iterable[Service] = SERVICES) -> dict[str, int]:
    """Every topic the platform needs: the standard ones plus each service's own."""
    topics = dict(TOPICS)
    for service in services:
        for name, partitions in service.topics:
            topics[name] = partitions
            topics[dlq_topic(name)] = DLQ_PARTITIONS
    return topics


def module_runnable(module: str) -> bool:
    """True if `python -m <module>` can run (the package and its __main__ exist)."""
    try:
        return importlib.util.find_spec(f"{module}.__main__") is not None
    except ModuleNotFoundError:
        return False


def _base_env(config: StackConfig, name: str, port: int) -> dict[str, str]:
    env = dict(os.environ)
    # Never inherit a caller's database settings: every process gets exactly ours.
    for key in ("DATABASE_URL", "MIGRATION_DATABASE_URL"):
        env.pop(key, None)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": config.kafka_bootstrap,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "JWT_ISSUER": config.jwt_issuer,
            "JWT_AUDIENCE": config.jwt_audience,
            "JWT_JWKS_FILE": str(config.jwks_file),
            "OTEL_SERVICE_NAME": name,
            "OTEL_TRACES_EXPORTER": "none",
            "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
            "PYTHONUNBUFFERED": "1",  # so [name] lines reach the terminal as they happen
        }
    )
    return env


def service_env(
    config: StackConfig, service: Service, database: ServiceDatabase, *, command: str
) -> dict[str, str]:
    """The full environment of `python -m <service.module> <command>`."""
    env = _base_env(config, service.name, config.port_for(service.port_env))
    env["DATABASE_URL"] = database.app_url
    if command == "migrate":
        env["MIGRATION_DATABASE_URL"] = database.owner_url
    return env


def gateway_env(
    config: StackConfig, services: Iterable[Service], gateway: Gateway = GATEWAY
) -> dict[str, str]:
    env = _base_env(config, gateway.name, config.port_for(gateway.port_env))
    for service in services:
        env[f"{service.port_env}_URL"] = f"http://127.0.0.1:{config.port_for(service.port_env)}"
    return env


def _python_m(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


class Platform:
    """The services and gateway of one profile, on top of running PostgreSQL and Kafka."""

    def __init__(
        self,
        config: StackConfig,
        postgres: PostgresCluster,
        supervisor: Supervisor,
        *,
        services: Sequence[Service] = SERVICES,
        gateway: Gateway | None = GATEWAY,
        skip_missing: bool = False,
        say=print,
    ) -> None:
        self.config = config
        self.postgres = postgres
        self.supervisor = supervisor
        self.say = say
        self.skip_missing = skip_missing
        self.all_services = tuple(services)
        self.services = tuple(s for s in services if self._present(s.module, s.name))
        self.gateway = gateway if gateway and self._present(gateway.module, gateway.name) else None
        self.databases: dict[str, ServiceDatabase] = {}

    def _present(self, module: str, name: str) -> bool:
        if module_runnable(module):
            return True
        if self.skip_missing:
            self.say(
                f"devstack: {name}: `python -m {module}` is not there yet; "
                "skipped (GPSOC_SKIP_MISSING=1)"
            )
            return False
        raise PlatformError(
            f"{name}: cannot run `python -m {module}` (no {module}.__main__). "
            "Run `uv sync`, or set GPSOC_SKIP_MISSING=1 to start without it."
        )

    # Databases are provisioned for every declared service, present or not, so that a
    # service started by hand later finds its database ready.
    def provision(self, *, reset: bool = False) -> dict[str, ServiceDatabase]:
        for service in self.all_services:
            make = self.postgres.reset_database if reset else self.postgres.provision_service
            self.databases[service.name] = make(service.database)
        return self.databases

    def migrate(self) -> None:
        for service in self.services:
            self.say(f"devstack: migrating {service.name}")
            self.supervisor.run_step(
                f"{service.name}-migrate",
                _python_m(service.module, "migrate"),
                env=service_env(
                    self.config, service, self.databases[service.name], command="migrate"
                ),
                cwd=self.config.repo_root,
            )

    def start_processes(self) -> None:
        for service in self.services:
            for command in service.processes:
                self.supervisor.start(
                    f"{service.name}-{command}",
                    _python_m(service.module, command),
                    env=service_env(
                        self.config, service, self.databases[service.name], command=command
                    ),
                    cwd=self.config.repo_root,
                )
        if self.gateway:
            self.supervisor.start(
                self.gateway.name,
                _python_m(self.gateway.module, "api"),
                env=gateway_env(self.config, self.services, self.gateway),
                cwd=self.config.repo_root,
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        targets = [
            (f"{s.name}-api", self.service_url(s.name))
            for s in self.services
            if "api" in s.processes
        ]
        if self.gateway:
            targets.append((self.gateway.name, self.gateway_url))
        by_name = {child.name: child for child in self.supervisor.children}
        for name, base in targets:
            child = by_name.get(name)
            wait_http_ok(
                f"{base}/readyz",
                max(1.0, deadline - time.monotonic()),
                alive=child.alive if child else None,
            )

    def seed_demo(self, *, force: bool = False) -> bool:
        """Load the demo dataset through each seeding service, once per state dir."""
        data = json.dumps(demo.dataset(), indent=1, sort_keys=True)
        digest = hashlib.sha256(data.encode()).hexdigest()
        data_file = self.config.state_dir / "demo-data.json"
        marker = self.config.state_dir / "demo-data.loaded"
        if not force and marker.exists() and marker.read_text().strip() == digest:
            return False
        seeders = [s for s in self.services if s.seeds_demo]
        if not seeders:
            return False
        data_file.write_text(data)
        for service in seeders:
            self.say(f"devstack: loading demo data into {service.name}")
            # seed-demo writes through the service's normal tenant-scoped path, as the app role.
            self.supervisor.run_step(
                f"{service.name}-seed-demo",
                _python_m(service.module, "seed-demo", "--file", str(data_file)),
                env=service_env(
                    self.config, service, self.databases[service.name], command="seed-demo"
                ),
                cwd=self.config.repo_root,
            )
        marker.write_text(digest + "\n")
        return True

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.config.gateway_port}"

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.config.port_for(service_named(name).port_env)}"

    def stop(self) -> None:
        self.supervisor.stop_all()


class _Shutdown(BaseException):
    """Raised from the signal handler so that startup, too, unwinds through `finally`."""


def _banner(config: StackConfig, platform: Platform) -> str:
    gw = platform.gateway_url
    lines = [
        "",
        "=" * 72,
        " openGPSoC is running"
        + ("" if platform.gateway else " (infrastructure only: no gateway yet)"),
        "=" * 72,
        f" Gateway      {gw}   (FHIR base {gw}/fhir/R4)",
        f"              health {gw}/healthz   readiness {gw}/readyz",
    ]
    for service in platform.services:
        lines.append(f" {service.name:<12} {platform.service_url(service.name)}")
    lines += [
        f" Kafka        {config.kafka_bootstrap}",
        f" PostgreSQL   127.0.0.1:{config.pg_port}   (credentials in {config.secrets_dir})",
        f" Logs         {config.logs_dir}",
        "",
        f" Get a token (roles: {' '.join(demo.ROLES)};",
        f"              practices: {' '.join(p.ods for p in demo.PRACTICES)}):",
        "   TOKEN=$(make -s token ROLE=gp PRACTICE=A81001 | tail -n 1)",
        f'   curl -H "Authorization: Bearer $TOKEN" "{gw}/fhir/R4/Patient?family=Smith"',
        "",
        " Ctrl-C stops everything.",
        "=" * 72,
        "",
    ]
    return "\n".join(lines)


def run(profile: str = "run") -> int:
    """`make run`: the whole platform in the foreground until Ctrl-C or SIGTERM."""
    config = StackConfig.for_profile(profile)
    skip_missing = os.environ.get("GPSOC_SKIP_MISSING") == "1"

    def on_signal(signum, frame):
        # Further signals while we shut down are ignored: the shutdown is already ordered.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Shutdown(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    postgres = PostgresCluster(config)
    kafka = KafkaBroker(config)
    supervisor = Supervisor(config.logs_dir, echo=True)
    platform: Platform | None = None
    exit_code = 0
    try:
        config.state_dir.mkdir(parents=True, exist_ok=True)
        DevKeys.for_config(config)
        print(f"devstack: starting PostgreSQL on 127.0.0.1:{config.pg_port}", flush=True)
        postgres.ensure_started()
        platform = Platform(config, postgres, supervisor, skip_missing=skip_missing)
        platform.provision()
        print(f"devstack: starting Kafka on {config.kafka_bootstrap}", flush=True)
        kafka.ensure_started()
        kafka.create_topics(platform_topics(SERVICES))
        platform.migrate()
        platform.start_processes()
        platform.wait_ready()
        platform.seed_demo()
        print(_banner(config, platform), flush=True)
        while True:
            dead = supervisor.dead_children()
            if dead:
                for child in dead:
                    print(
                        f"devstack: {child.name} exited with code {child.returncode}; "
                        f"see {child.log_file}. Stopping the platform.",
                        file=sys.stderr,
                        flush=True,
                    )
                exit_code = 1
                break
            time.sleep(0.5)
    except _Shutdown:
        print("\ndevstack: stopping...", flush=True)
    except Exception as error:  # startup failure: report it plainly, then clean up
        print(f"devstack: {error}", file=sys.stderr, flush=True)
        exit_code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for stop in (supervisor.stop_all, kafka.stop, postgres.stop):
            try:
                stop()
            except Exception as error:  # keep stopping the rest
                print(f"devstack: while stopping: {error}", file=sys.stderr, flush=True)
                exit_code = exit_code or 1
        print("devstack: stopped", flush=True)
    return exit_code


__all__ = [
    "GATEWAY",
    "SERVICES",
    "Gateway",
    "Platform",
    "PlatformError",
    "ProcessFailed",
    "Service",
    "gateway_env",
    "module_runnable",
    "platform_topics",
    "run",
    "service_env",
    "service_named",
]
