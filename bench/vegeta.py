"""vegeta: installing it, feeding it targets, running an attack and reading its report."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VEGETA_MODULE = "github.com/tsenart/vegeta/v12@v12.13.0"


class VegetaError(RuntimeError):
    pass


def bin_dir(repo_root: Path) -> Path:
    """tools/bin if the uv workspace excludes it, else .state/bin.

    The workspace's members glob `tools/*` takes any directory under tools/ for a member,
    and a tools/bin without a pyproject.toml breaks every `uv run`. Until
    [tool.uv.workspace] excludes "tools/bin", vegeta lives in .state/bin (also ignored)."""
    try:
        workspace = tomllib.loads((repo_root / "pyproject.toml").read_text())["tool"]["uv"][
            "workspace"
        ]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        workspace = {}
    if "tools/bin" in workspace.get("exclude", []):
        return repo_root / "tools" / "bin"
    return repo_root / ".state" / "bin"


def ensure_vegeta(repo_root: Path, say=print) -> Path:
    """The vegeta binary: BENCH_VEGETA, else tools/bin or .state/bin, installed if missing."""
    if os.environ.get("BENCH_VEGETA"):
        return Path(os.environ["BENCH_VEGETA"])
    for directory in (repo_root / "tools" / "bin", repo_root / ".state" / "bin"):
        if (directory / "vegeta").is_file():
            return directory / "vegeta"
    target = bin_dir(repo_root)
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        raise VegetaError(
            "vegeta is not installed and there is no Go toolchain to install it; "
            "install Go, or set BENCH_VEGETA to a vegeta binary"
        )
    target.mkdir(parents=True, exist_ok=True)
    say(f"bench: installing vegeta into {target} (go install {VEGETA_MODULE})")
    result = subprocess.run(
        [go, "install", VEGETA_MODULE],
        env={**os.environ, "GOBIN": str(target)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0 or not (target / "vegeta").is_file():
        raise VegetaError(f"go install {VEGETA_MODULE} failed:\n{result.stderr[-2000:]}")
    return target / "vegeta"


@dataclass(frozen=True)
class Target:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None

    def to_json(self) -> str:
        target: dict[str, Any] = {
            "method": self.method,
            "url": self.url,
            "header": {k: [v] for k, v in self.headers.items()},
        }
        if self.body is not None:
            target["body"] = base64.b64encode(self.body).decode("ascii")
        return json.dumps(target, separators=(",", ":"))


def write_targets(path: Path, targets: Iterable[Target]) -> int:
    count = 0
    with open(path, "w") as out:
        for target in targets:
            out.write(target.to_json())
            out.write("\n")
            count += 1
    if count == 0:
        raise VegetaError(f"no targets for {path.name}")
    return count


@dataclass
class AttackResult:
    report: dict[str, Any]  # vegeta report -type=json
    wall_seconds: float
    cpu_seconds: float  # vegeta's own user + system CPU time


def attack(
    vegeta: Path,
    targets_file: Path,
    out_file: Path,
    *,
    duration: float,
    rate: int | None,
    concurrency: int,
    timeout: float,
) -> AttackResult:
    """Saturation (rate None: -rate=0 with `concurrency` workers, closed loop) or a fixed rate."""
    argv = [
        str(vegeta),
        "attack",
        "-format=json",
        f"-targets={targets_file}",
        f"-duration={duration:g}s",
        f"-timeout={timeout:g}s",
        f"-output={out_file}",
        "-keepalive=true",
        "-redirects=-1",
    ]
    if rate is None:
        argv += ["-rate=0", f"-workers={concurrency}", f"-max-workers={concurrency}"]
    else:
        # Open loop: vegeta adds workers if the server slows, so latency is not hidden, up
        # to 4 x the saturation clients, so that an overload leaves a bounded backlog.
        argv += [f"-rate={rate}/s", "-workers=16", f"-max-workers={4 * concurrency}"]
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = duration + timeout + 30
    try:
        _, status, usage = _wait4(process, deadline)
    except TimeoutError:
        process.kill()
        process.wait()
        raise VegetaError(f"vegeta attack did not finish within {deadline:.0f}s") from None
    wall = time.monotonic() - started
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if status != 0:
        raise VegetaError(f"vegeta attack failed (exit {status}): {stderr.strip()[-2000:]}")
    return AttackResult(
        report=report(vegeta, out_file),
        wall_seconds=wall,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


def _wait4(process: subprocess.Popen, timeout: float):  # noqa: ANN202
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return pid, process.returncode, usage
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.05)


def report(vegeta: Path, out_file: Path) -> dict[str, Any]:
    result = subprocess.run(
        [str(vegeta), "report", "-type=json", str(out_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise VegetaError(f"vegeta report failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def summarise(report: dict[str, Any], expected_status: int) -> dict[str, Any]:
    """The figures we keep: throughput, latency percentiles in ms, status codes, errors."""
    lat = report.get("latencies", {})
    codes = {str(k): int(v) for k, v in (report.get("status_codes") or {}).items()}
    requests = int(report.get("requests", 0))
    expected = codes.get(str(expected_status), 0)
    duration_s = (report.get("duration", 0) + report.get("wait", 0)) / 1e9
    return {
        "requests": requests,
        "rate": report.get("rate", 0.0),  # requests sent per second
        # Requests answered with the expected status per second (vegeta's own
        # `throughput` counts any 2xx/3xx as success; we count only the expected code).
        "throughput": expected / duration_s if duration_s else 0.0,
        "vegeta_throughput": report.get("throughput", 0.0),
        "success_ratio": expected / requests if requests else 0.0,
        "status_codes": codes,
        "expected_status": expected_status,
        "errors": (report.get("errors") or [])[:10],
        "latency_ms": {
            "mean": lat.get("mean", 0) / 1e6,
            "p50": lat.get("50th", 0) / 1e6,
            "p90": lat.get("90th", 0) / 1e6,
            "p95": lat.get("95th", 0) / 1e6,
            "p99": lat.get("99th", 0) / 1e6,
            "max": lat.get("max", 0) / 1e6,
        },
        "bytes_in_mean": (report.get("bytes_in") or {}).get("mean", 0.0),
    }
