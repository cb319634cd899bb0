"""The stack the bench measures, started with devstack on its own state dir and ports.

devstack knows the profiles "run" and "test"; the bench takes the test profile's
configuration and moves it to .state/bench and ports of its own, so it can run next to
a `make run` and a `make test` without resetting their databases or taking their ports.
Only what the bench started is stopped at the end.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from devstack.config import SERVICE_PORTS, StackConfig
from devstack.testing import PlatformHandle, TestStack

# Default ports of the bench stack; each overridable with GPSOC_BENCH_<KEY>_PORT.
BENCH_PORTS = {
    "PG": 25533,  # below the ephemeral port range
    "KAFKA": 19192,
    "KAFKA_CONTROLLER": 19193,
    "FLOOR": 28199,
}
BENCH_SERVICE_PORT_BASE = 28000
GATEWAY_BENCH_ENV = {
    "RATE_LIMIT_USER_PER_SECOND": "0",
    "RATE_LIMIT_PRACTICE_PER_SECOND": "0",
}  # GATEWAY 18080 -> 28080, PATIENT_INDEX 18101 -> 28101, ...


def _port(key: str, default: int) -> int:
    raw = os.environ.get(f"GPSOC_BENCH_{key}_PORT")
    return int(raw) if raw else default


def bench_config() -> StackConfig:
    base = StackConfig.for_profile("test")
    services = {
        key: _port(key, BENCH_SERVICE_PORT_BASE + test_port % 1000)
        for key, (_, test_port) in SERVICE_PORTS.items()
    }
    return dataclasses.replace(
        base,
        state_dir=base.repo_root / ".state" / "bench",
        pg_port=_port("PG", BENCH_PORTS["PG"]),
        kafka_port=_port("KAFKA", BENCH_PORTS["KAFKA"]),
        kafka_controller_port=_port("KAFKA_CONTROLLER", BENCH_PORTS["KAFKA_CONTROLLER"]),
        service_ports=services,
    )


class FloorApp:
    """bench/floor.py under uvicorn, in its own session so that it is stopped as a group."""

    def __init__(self, database_url: str, port: int, log_file: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._database_url = database_url
        self._log_file = log_file
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log_file, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.floor", "--port", str(self.port)],
                env={**os.environ, "FLOOR_DATABASE_URL": self._database_url},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the floor app exited ({self.process.returncode}); see {self._log_file}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the floor app did not answer within {timeout}s; see {self._log_file}")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class BenchStack:
    """PostgreSQL, Kafka, the services of the chosen suites (api, relay, consumer each),
    the gateway, the floor (with the patient index)."""

    def __init__(self, say=print) -> None:
        self.config = bench_config()
        self.say = say
        self.test_stack = TestStack(self.config)
        self.platform: PlatformHandle | None = None
        self.floor: FloorApp | None = None

    def start(
        self, *, services: tuple[str, ...] = ("patient-index",), floor: bool = True
    ) -> PlatformHandle:
        c = self.config
        # The gateway's per-user and per-practice rate limits would measure the limiter,
        # not the platform (a handful of bench users make every request); 0 turns them off.
        # devstack hands the environment on to the gateway. Set them to measure with limits.
        for name, value in GATEWAY_BENCH_ENV.items():
            os.environ.setdefault(name, value)
        self.say(
            f"bench: starting PostgreSQL (127.0.0.1:{c.pg_port}) and Kafka ({c.kafka_bootstrap}) "
            f"in {c.state_dir}"
        )
        self.test_stack.start()
        self.say(
            f"bench: starting {', '.join(services)} and the gateway (fresh databases, migrations)"
        )
        self.platform = self.test_stack.start_platform(services, gateway=True, ready_timeout=240)
        if floor and "patient-index" in services:
            database = self.platform.databases["patient-index"]
            self.floor = FloorApp(
                database.app_url, _port("FLOOR", BENCH_PORTS["FLOOR"]), c.logs_dir / "floor.log"
            )
            self.floor.start()
        return self.platform

    @property
    def has_gateway(self) -> bool:
        return self.platform is not None and self.platform.platform.gateway is not None

    def stop(self) -> None:
        try:
            if self.floor:
                self.floor.stop()
        finally:
            self.test_stack.stop()

    # ----- processes, for CPU accounting ---------------------------------------------
    def process_roots(self) -> dict[str, int]:
        """name -> pid of each process (group) whose CPU time the bench reports."""
        roots: dict[str, int] = {}
        if self.platform is not None:
            for child in self.platform.platform.supervisor.children:
                roots[child.name] = child.pid
        if self.floor and self.floor.pid:
            roots["floor"] = self.floor.pid
        pid_file = self.test_stack.postgres.data_dir / "postmaster.pid"
        try:
            roots["postgres"] = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
        try:
            kafka_pid = self.test_stack.kafka._our_pid()
        except Exception:  # noqa: BLE001 - accounting only
            kafka_pid = None
        if kafka_pid:
            roots["kafka"] = kafka_pid
        return roots
