"""The supervisor and the environment the platform gives each process."""

import sys
import time

import pytest
from devstack.config import StackConfig
from devstack.platform import SERVICES, gateway_env, platform_topics, service_env, service_named
from devstack.postgres import ServiceDatabase
from devstack.procs import ProcessFailed, Supervisor, wait_http_ok


def test_dead_child_is_reported_and_stop_all_ends_the_group(tmp_path):
    supervisor = Supervisor(tmp_path)
    # A child that ignores SIGTERM and has a grandchild: both must go.
    stubborn = (
        "import signal, subprocess, sys, time;"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "print('up', flush=True); time.sleep(60)"
    )
    long_running = supervisor.start("stubborn", [sys.executable, "-c", stubborn])
    supervisor.start("quitter", [sys.executable, "-c", "import sys; print('bye'); sys.exit(3)"])
    deadline = time.monotonic() + 10
    while not supervisor.dead_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    (dead,) = supervisor.dead_children()
    assert dead.name == "quitter" and dead.returncode == 3
    assert "bye" in (tmp_path / "quitter.log").read_text()
    started = time.monotonic()
    supervisor.stop_all(timeout=1)
    assert time.monotonic() - started < 5
    assert not long_running.alive()
    assert supervisor.children == []


def test_failed_step_raises_with_the_log_tail(tmp_path):
    supervisor = Supervisor(tmp_path)
    supervisor.run_step("ok", [sys.executable, "-c", "print('fine')"])
    with pytest.raises(ProcessFailed, match="exit code 4") as failure:
        supervisor.run_step("bad", [sys.executable, "-c", "print('migration broke'); exit(4)"])
    assert "migration broke" in str(failure.value)


def test_wait_http_ok_fails_fast_when_the_server_died():
    started = time.monotonic()
    with pytest.raises(ProcessFailed, match="exited"):
        wait_http_ok("http://127.0.0.1:9/readyz", timeout=30, alive=lambda: False)
    assert time.monotonic() - started < 2


@pytest.fixture
def config(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.uv.workspace]\nmembers = []\n")
    return StackConfig.for_profile("test", env={"GPSOC_REPO_ROOT": str(tmp_path)})


def test_service_environment_follows_the_contract(config, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://leaked")
    service = service_named("patient-index")
    db = ServiceDatabase(
        name="patient_index",
        owner_user="patient_index_owner",
        app_user="patient_index_app",
        owner_url="postgresql://owner@x/patient_index",
        app_url="postgresql://app@x/patient_index",
        superuser_url="postgresql://postgres@/patient_index",
    )
    api = service_env(config, service, db, command="api")
    assert api["DATABASE_URL"] == db.app_url
    assert "MIGRATION_DATABASE_URL" not in api
    assert api["PORT"] == "18101" and api["HOST"] == "127.0.0.1"
    assert api["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"
    assert api["JWT_ISSUER"] == "https://dev-issuer.opengpsoc.local"
    assert api["JWT_AUDIENCE"] == "opengpsoc"
    assert api["JWT_JWKS_FILE"] == str(config.jwks_file)
    assert api["OTEL_SERVICE_NAME"] == "patient-index" and api["OTEL_TRACES_EXPORTER"] == "none"
    migrate = service_env(config, service, db, command="migrate")
    assert migrate["MIGRATION_DATABASE_URL"] == db.owner_url
    seed = service_env(config, service, db, command="seed-demo")
    assert seed["DATABASE_URL"] == db.app_url and "MIGRATION_DATABASE_URL" not in seed

    gateway = gateway_env(config, SERVICES)
    assert gateway["PORT"] == "18080"
    assert gateway["PATIENT_INDEX_URL"] == "http://127.0.0.1:18101"
    assert "DATABASE_URL" not in gateway


def test_platform_topics_include_each_services_own_with_a_dlq():
    topics = platform_topics()
    assert topics["patient.events.v1"] == 6
    assert topics["audit.events.v1.dlq"] == 3
    assert topics["pds.notifications.v1"] == 6 and topics["pds.notifications.v1.dlq"] == 3


def test_a_missing_service_module_fails_loudly_unless_skipping_is_asked(config, tmp_path):
    from devstack.platform import Platform, PlatformError, Service

    ghost = Service(
        name="ghost", module="no_such_service_module", database="ghost", port_env="GATEWAY"
    )
    supervisor = Supervisor(tmp_path)
    with pytest.raises(PlatformError, match="GPSOC_SKIP_MISSING"):
        Platform(config, postgres=None, supervisor=supervisor, services=(ghost,), gateway=None)
    said = []
    platform = Platform(
        config,
        postgres=None,
        supervisor=supervisor,
        services=(ghost,),
        gateway=None,
        skip_missing=True,
        say=said.append,
    )
    assert platform.services == () and platform.all_services == (ghost,)
    assert "skipped" in said[0]
