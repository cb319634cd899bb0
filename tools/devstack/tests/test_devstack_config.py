"""Profile defaults and environment overrides."""

import pytest
from devstack.config import ConfigError, StackConfig


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.uv.workspace]\nmembers = []\n")
    return tmp_path


def test_run_profile_defaults(repo):
    config = StackConfig.for_profile("run", env={"GPSOC_REPO_ROOT": str(repo)})
    assert config.state_dir == repo / ".state" / "run"
    assert (config.pg_port, config.kafka_port, config.kafka_controller_port) == (5433, 9092, 9093)
    assert config.gateway_port == 8080
    assert config.port_for("PATIENT_INDEX") == 8101
    assert config.kafka_bootstrap == "127.0.0.1:9092"


def test_test_profile_defaults(repo):
    config = StackConfig.for_profile("test", env={"GPSOC_REPO_ROOT": str(repo)})
    assert config.state_dir == repo / ".state" / "test"
    assert (config.pg_port, config.kafka_port, config.kafka_controller_port) == (
        15433,
        19092,
        19093,
    )
    assert (config.gateway_port, config.port_for("PATIENT_INDEX")) == (18080, 18101)


def test_overrides_are_per_profile(repo):
    env = {
        "GPSOC_REPO_ROOT": str(repo),
        "GPSOC_PG_PORT": "6000",
        "GPSOC_KAFKA_PORT": "6001",
        "GPSOC_PATIENT_INDEX_PORT": "6002",
        "GPSOC_TEST_PG_PORT": "7000",
        "GPSOC_TEST_GATEWAY_PORT": "7001",
        "GPSOC_TEST_KAFKA_CONTROLLER_PORT": "7002",
    }
    run = StackConfig.for_profile("run", env=env)
    test = StackConfig.for_profile("test", env=env)
    assert (run.pg_port, run.kafka_port, run.port_for("PATIENT_INDEX"), run.gateway_port) == (
        6000,
        6001,
        6002,
        8080,
    )
    assert (test.pg_port, test.gateway_port, test.kafka_controller_port, test.kafka_port) == (
        7000,
        7001,
        7002,
        19092,
    )


def test_bad_port_and_profile(repo):
    with pytest.raises(ConfigError, match="not a port"):
        StackConfig.for_profile("run", env={"GPSOC_REPO_ROOT": str(repo), "GPSOC_PG_PORT": "five"})
    with pytest.raises(ConfigError, match="outside"):
        StackConfig.for_profile("run", env={"GPSOC_REPO_ROOT": str(repo), "GPSOC_PG_PORT": "70000"})
    with pytest.raises(ConfigError, match="unknown profile"):
        StackConfig.for_profile("prod", env={"GPSOC_REPO_ROOT": str(repo)})
    with pytest.raises(ConfigError, match="SERVICE_PORTS"):
        StackConfig.for_profile("run", env={"GPSOC_REPO_ROOT": str(repo)}).port_for("NOPE")


def test_repo_root_is_found_from_a_subdirectory(repo, monkeypatch):
    sub = repo / "services" / "x"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    monkeypatch.delenv("GPSOC_REPO_ROOT", raising=False)
    assert StackConfig.for_profile("run").repo_root == repo
