"""docker-compose.yml: the same platform as `make run`, checked by its structure (no
container engine runs here): every service and process, healthchecks, ordering by
`depends_on` conditions, topics and mounts."""

from __future__ import annotations

import re

import pytest
import yaml
from deploy_support import REPO
from devstack.platform import SERVICES as PLATFORM_SERVICES

COMPOSE = REPO / "docker-compose.yml"
# What `make run` runs is what compose must run: one registry for both.
SERVICES = tuple(service.name for service in PLATFORM_SERVICES)
DATABASES = {service.name: service.database for service in PLATFORM_SERVICES}
# Long-running containers without a healthcheck, and why.
NO_HEALTHCHECK = {"otel-collector": "distroless image: no shell or client to run a check with"}
ONE_SHOT = "no"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_every_service_runs_migrate_api_relay_and_consumer(compose):
    from devstack.platform import SERVICES as DEVSTACK_SERVICES

    names = set(compose["services"])
    for service in {*SERVICES, *(s.name for s in DEVSTACK_SERVICES)}:
        for process in ("migrate", "api", "relay", "consumer"):
            entry = compose["services"].get(f"{service}-{process}")
            assert entry, f"{service}-{process} missing"
            assert entry["command"] == [process]
            assert entry["build"]["dockerfile"] == f"services/{service}/Dockerfile"
    assert {"gateway", "postgres", "kafka", "kafka-init", "otel-collector", "jaeger",
            "prometheus", "grafana", "keys"} <= names


def test_long_running_containers_have_healthchecks(compose):
    for name, service in compose["services"].items():
        if service.get("restart") == ONE_SHOT or service.get("profiles"):
            continue
        if name in NO_HEALTHCHECK:
            assert "healthcheck" not in service
            continue
        check = service.get("healthcheck")
        assert check and check["test"][0] in {"CMD", "CMD-SHELL"}, f"{name} has no healthcheck"


def test_startup_is_ordered_by_conditions(compose):
    services = compose["services"]
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, (name, dependency)
            wanted = ("service_completed_successfully" if services[dependency].get("restart") == ONE_SHOT
                      else "service_healthy" if "healthcheck" in services[dependency]
                      else "service_started")
            assert condition["condition"] == wanted, (name, dependency, condition)
    for service in SERVICES:
        for process in ("api", "relay", "consumer"):
            deps = services[f"{service}-{process}"]["depends_on"]
            assert deps[f"{service}-migrate"]["condition"] == "service_completed_successfully"
            assert deps["kafka-init"]["condition"] == "service_completed_successfully"
        assert services["gateway"]["depends_on"][f"{service}-api"]["condition"] == "service_healthy"


def test_services_connect_as_the_app_role_and_migrate_as_the_owner(compose):
    for service in SERVICES:
        database = DATABASES[service]
        for process in ("api", "relay", "consumer"):
            env = compose["services"][f"{service}-{process}"]["environment"]
            assert env["DATABASE_URL"].startswith(f"postgresql://{database}_app:")
            assert env["DATABASE_URL"].endswith(f"@postgres:5432/{database}")
            assert "MIGRATION_DATABASE_URL" not in env
        migrate = compose["services"][f"{service}-migrate"]["environment"]
        assert migrate["MIGRATION_DATABASE_URL"].startswith(f"postgresql://{database}_owner:")
    assert set(compose["services"]["postgres"]["environment"]["GPSOC_DATABASES"].split()) == {
        DATABASES[s] for s in SERVICES
    }


def test_gateway_routes_to_every_service(compose):
    env = compose["services"]["gateway"]["environment"]
    for service in SERVICES:
        assert env[f"{service.upper().replace('-', '_')}_URL"] == f"http://{service}-api:8000"


def test_demo_data_is_loaded_by_every_seeding_service(compose):
    from devstack.platform import SERVICES as DEVSTACK_SERVICES

    seeders = [s for s in DEVSTACK_SERVICES if s.seeds_demo]
    assert seeders
    for service in seeders:
        seeder = compose["services"][f"{service.name}-demo-data"]
        assert f"python -m {service.module} seed-demo --file" in " ".join(seeder["command"])
        assert seeder["depends_on"][f"{service.name}-migrate"]["condition"] == "service_completed_successfully"


def test_every_service_that_exists_has_its_dockerfile(compose):
    for service in SERVICES:
        if (REPO / "services" / service / "pyproject.toml").exists():
            assert (REPO / "services" / service / "Dockerfile").exists(), service


def test_kafka_is_the_official_image_in_kraft_mode(compose):
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_created_topics_are_the_platforms_topics():
    from devstack.platform import platform_topics
    from devstack.topics import DLQ_PARTITIONS, EVENT_PARTITIONS

    script = (REPO / "deploy" / "docker" / "kafka" / "create-topics.sh").read_text()
    listed = re.search(r"TOPICS=\(\n(.*?)\n\)", script, re.S).group(1).split()
    assert f"EVENT_PARTITIONS={EVENT_PARTITIONS}" in script and f"DLQ_PARTITIONS={DLQ_PARTITIONS}" in script
    created = {**{t: EVENT_PARTITIONS for t in listed}, **{f"{t}.dlq": DLQ_PARTITIONS for t in listed}}
    assert created == platform_topics()


def test_images_are_pinned(compose):
    for name, service in compose["services"].items():
        image = service["image"]
        if image.startswith("opengpsoc/"):
            assert "build" in service or service.get("profiles") or service.get("restart") == ONE_SHOT, name
            continue
        assert re.match(r"^[\w./-]+:v?\d+\.\d+(\.\d+)?[\w.-]*$", image), f"{name}: {image} is not pinned"


def test_no_host_path_outside_the_repository(compose):
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            assert (REPO / build["context"]).resolve() == REPO
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source in compose.get("volumes", {}):
                continue  # a named volume
            assert source.startswith("./"), f"{name}: {volume} is not a repository path"
            path = (REPO / source).resolve()
            assert path.is_relative_to(REPO) and path.exists(), f"{name}: {volume}"
            assert not path.is_relative_to(REPO / ".state"), f"{name}: mounts local state"


def test_published_ports_bind_loopback_only(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_grafana_and_prometheus_are_provisioned_from_the_repo(compose):
    grafana = " ".join(compose["services"]["grafana"]["volumes"])
    assert "./deploy/grafana/dashboards" in grafana and "./deploy/grafana/provisioning" in grafana
    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]}
    assert targets == {
        "gateway:8080",
        *(f"{s}-api:8000" for s in SERVICES),
        *(f"{s}-{p}:9000" for s in SERVICES for p in ("relay", "consumer")),
    }


def test_our_containers_run_locked_down(compose):
    for name, service in compose["services"].items():
        if service.get("command") and service["command"][0] in ("api", "relay", "consumer"):
            assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
            assert "user" not in service, f"{name} must run as the image's non-root user"
