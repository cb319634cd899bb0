"""Where the local stack lives and which ports it uses, per profile.

Two profiles exist so that `make run` (profile "run") and `make test` (profile "test")
can be up at the same time without colliding: each has its own state directory and its
own default ports, and the test profile reads its overrides from GPSOC_TEST_* variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROFILES = ("run", "test")

# The development token issuer. Services verify tokens against these values and the
# JWKS file of the profile, so they live here rather than in devstack.tokens.
JWT_ISSUER = "https://dev-issuer.opengpsoc.local"
JWT_AUDIENCE = "opengpsoc"

# Default ports of the infrastructure: name -> (run profile, test profile).
INFRA_PORTS: dict[str, tuple[int, int]] = {
    # Below the ephemeral range (32768-60999 on Linux): a client socket can never hold it.
    "PG": (5433, 15433),
    "KAFKA": (9092, 19092),
    "KAFKA_CONTROLLER": (9093, 19093),
}

# Default HTTP ports of the gateway and of each service's api, keyed by the service's
# port_env name (devstack.platform uses the same key). Adding a service is one line here
# plus its entry in devstack.platform.SERVICES. The env override is GPSOC_<KEY>_PORT
# (GPSOC_TEST_<KEY>_PORT for the test profile).
SERVICE_PORTS: dict[str, tuple[int, int]] = {
    "GATEWAY": (8080, 18080),
    "PATIENT_INDEX": (8101, 18101),
    "APPOINTMENTS": (8102, 18102),
    "PRESCRIBING": (8103, 18103),
    "CLINICAL_NOTES": (8104, 18104),
    "AUDIT": (8105, 18105),
}


class ConfigError(RuntimeError):
    """The environment asks for something the stack cannot do (bad profile, bad port)."""


def env_prefix(profile: str) -> str:
    return "GPSOC_TEST_" if profile == "test" else "GPSOC_"


def find_repo_root(env: Mapping[str, str] | None = None) -> Path:
    """The workspace root: GPSOC_REPO_ROOT, or the nearest directory above the current
    directory (then above this file) whose pyproject.toml declares [tool.uv.workspace]."""
    env = os.environ if env is None else env
    if env.get("GPSOC_REPO_ROOT"):
        return Path(env["GPSOC_REPO_ROOT"]).resolve()
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for candidate in (start, *start.parents):
            pyproject = candidate / "pyproject.toml"
            if pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text("utf-8"):
                return candidate
    raise ConfigError(
        "cannot find the openGPSoC repository root (a pyproject.toml with "
        "[tool.uv.workspace]); run from inside the repository or set GPSOC_REPO_ROOT"
    )


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name}={port} is outside 1..65535")
    return port


@dataclass(frozen=True)
class StackConfig:
    profile: str
    repo_root: Path
    state_dir: Path
    pg_port: int
    kafka_port: int
    kafka_controller_port: int
    # port_env key (e.g. "PATIENT_INDEX", "GATEWAY") -> HTTP port
    service_ports: dict[str, int] = field(default_factory=dict)

    @classmethod
    def for_profile(cls, profile: str = "run", env: Mapping[str, str] | None = None) -> StackConfig:
        if profile not in PROFILES:
            raise ConfigError(f"unknown profile {profile!r}; expected one of {PROFILES}")
        env = os.environ if env is None else env
        which = 1 if profile == "test" else 0
        prefix = env_prefix(profile)
        repo_root = find_repo_root(env)
        infra = {
            key: _port(env, f"{prefix}{key}_PORT", ports[which])
            for key, ports in INFRA_PORTS.items()
        }
        services = {
            key: _port(env, f"{prefix}{key}_PORT", ports[which])
            for key, ports in SERVICE_PORTS.items()
        }
        return cls(
            profile=profile,
            repo_root=repo_root,
            state_dir=repo_root / ".state" / profile,
            pg_port=infra["PG"],
            kafka_port=infra["KAFKA"],
            kafka_controller_port=infra["KAFKA_CONTROLLER"],
            service_ports=services,
        )

    def port_for(self, port_env: str) -> int:
        try:
            return self.service_ports[port_env]
        except KeyError:
            raise ConfigError(
                f"no port for {port_env!r}: add it to devstack.config.SERVICE_PORTS"
            ) from None

    # Everything below is derived, so that the layout of the state dir is defined once.
    @property
    def gateway_port(self) -> int:
        return self.port_for("GATEWAY")

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

    @property
    def keys_dir(self) -> Path:
        return self.state_dir / "keys"

    @property
    def jwks_file(self) -> Path:
        return self.keys_dir / "jwks.json"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pg_dir(self) -> Path:
        return self.state_dir / "pg"

    @property
    def kafka_dir(self) -> Path:
        return self.state_dir / "kafka"

    @property
    def kafka_lib_cache(self) -> Path:
        # Shared by both profiles: the jars depend only on infra/kafka/pom.xml.
        return self.repo_root / ".state" / "kafka-lib"

    @property
    def kafka_pom(self) -> Path:
        return self.repo_root / "infra" / "kafka" / "pom.xml"

    @property
    def kafka_log4j_config(self) -> Path:
        return self.repo_root / "infra" / "kafka" / "log4j2.properties"

    @property
    def jwt_issuer(self) -> str:
        return JWT_ISSUER

    @property
    def jwt_audience(self) -> str:
        return JWT_AUDIENCE
