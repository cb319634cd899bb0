"""One bench run: start the stack, load patients, run every scenario, report, stop."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform as py_platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from . import cpu, report
from .dataset import PRACTICES, NhsNumbers, generate
from .loader import load, superuser_connect
from .settings import FLOOR_OPERATIONS, OPERATION_TITLES, SYSTEM_TITLES, BenchSettings
from .targets import EXPECTED_STATUS, System, TargetFactory, new_patients, request_for
from .vegeta import VegetaError, attack, ensure_vegeta, summarise

# The most registrations per second any run here could reach; target files for a
# registration attack hold this many per second of attack, so no NHS number repeats.
MAX_REGISTRATION_RATE = 3000
# CPU (% of one core) used by processes outside the bench's stack above which a run warns.
OUTSIDE_CPU_WARNING = 25
# The stack counts as idle below this much CPU (% of one core, all its processes together).
IDLE_CPU = 40


def say(message: str) -> None:
    print(message, flush=True)


class _Terminated(BaseException):
    pass


def _on_sigterm(signum, frame):  # noqa: ANN001, ANN202
    raise _Terminated()


def _git(repo_root: Path) -> dict[str, Any]:
    def run(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=repo_root, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain"))}


async def _outbox_backlog(superuser_url: str) -> int:
    conn = await superuser_connect(superuser_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
    finally:
        await conn.close()


class Bench:
    def __init__(self, settings: BenchSettings, repo_root: Path) -> None:
        self.settings = settings
        self.repo_root = repo_root
        self.scenarios: list[dict[str, Any]] = []
        self.results: dict[str, Any] = {}
        self.dead: dict[str, dict[str, Any]] = {}  # platform processes that died meanwhile

    # ----- steps ----------------------------------------------------------------------
    def settle(self, superuser_url: str, roots: dict[str, int] | None = None) -> dict[str, Any]:
        """Wait (bounded by BENCH_SETTLE_MAX) until the relay has published the outbox and
        the stack is idle, so that one scenario's left-over work (events to publish,
        requests still queued after an overload) is not done on the next one's time."""
        started = time.monotonic()
        limit = started + self.settings.settle_max
        backlog = asyncio.run(_outbox_backlog(superuser_url))
        first = backlog
        relay_alive = "patient-index-relay" not in self.dead
        while backlog and relay_alive and time.monotonic() < limit:
            time.sleep(0.5)
            backlog = asyncio.run(_outbox_backlog(superuser_url))
        busy = None
        if roots:
            while time.monotonic() < limit:
                before = cpu.snapshot(roots)
                time.sleep(0.5)
                busy = sum(cpu.usage(before, cpu.snapshot(roots), 0.5).values())
                if busy < IDLE_CPU:
                    break
        return {
            "backlog": first,
            "left": backlog,
            "stack_cpu": busy,
            "seconds": round(time.monotonic() - started, 1),
        }

    def over_capacity(self, system: str, op: str, mode: str) -> str | None:
        """Why a fixed-rate scenario above the capacity measured at saturation is not run:
        it would only measure a growing queue, and leave a backlog of requests that the
        service goes on serving (its clients long gone) well into the next scenarios."""
        if mode != "rate":
            return None
        sat = report.find(self.scenarios, system, op, "saturation")
        if sat is None:
            return None
        capacity = sat["result"]["throughput"]
        if capacity < self.settings.rate:
            return (
                f"capacity at saturation is {capacity:.1f} req/s, below {self.settings.rate} "
                "req/s: it cannot be sustained"
            )
        return None

    def check_processes(self, stack: Any, when: str) -> None:
        """Note (loudly) any platform process that died; the run then counts as broken."""
        if stack.platform is None:
            return
        for child in stack.platform.platform.supervisor.dead_children():
            if child.name in self.dead:
                continue
            self.dead[child.name] = {
                "returncode": child.returncode,
                "noticed": when,
                "log": str(child.log_file),
            }
            say(
                f"bench: !! {child.name} EXITED (code {child.returncode}) before {when}; "
                f"see {child.log_file}"
            )

    def sanity(self, system: System, op: str, factory: TargetFactory) -> str | None:
        """One request by hand; None if it answered as it should, else what went wrong."""
        if op == "register":
            patient = next(new_patients(1, factory.numbers, factory.rng, PRACTICES, 10**9))
        else:
            patient = factory.loaded[len(factory.loaded) // 2]
        target = request_for(op, system, patient, factory.rng)
        try:
            response = httpx.request(
                target.method,
                target.url,
                headers=dict(target.headers),
                content=target.body,
                timeout=10,
            )
        except httpx.HTTPError as error:
            return f"{target.method} {target.url}: {error!r}"
        if response.status_code != EXPECTED_STATUS[op]:
            return (
                f"{target.method} {target.url.split('?')[0]} answered {response.status_code}, "
                f"expected {EXPECTED_STATUS[op]}: {response.text[:300]}"
            )
        if op in ("nhs", "read"):
            body = response.json()
            found = (
                body.get("id")
                if op == "read"
                else ((body.get("entry") or [{}])[0].get("resource", {}).get("id"))
            )
            if found != patient.id:
                return (
                    f"{op}: expected patient {patient.id}, got {found} ({json.dumps(body)[:200]})"
                )
        return None

    def scenario(
        self,
        vegeta: Path,
        system: System,
        op: str,
        mode: str,
        factory: TargetFactory,
        roots: dict[str, int],
        superuser_url: str,
        work: Path,
    ) -> dict[str, Any]:
        s = self.settings
        rate = None if mode == "saturation" else s.rate
        entry: dict[str, Any] = {
            "system": system.name,
            "operation": op,
            "mode": mode,
            "concurrency": s.concurrency if rate is None else None,
            "target_rate": rate,
            "duration_s": s.duration,
        }
        per_second = MAX_REGISTRATION_RATE if rate is None else int(rate * 1.5) + 50
        title = f"{OPERATION_TITLES[op]} via {SYSTEM_TITLES[system.name]}, " + (
            f"saturation ({s.concurrency} clients)" if rate is None else f"{rate} req/s"
        )
        say(f"bench: {title}")
        timeout = s.request_timeout
        if s.warmup > 0:
            warm_file, _ = factory.write(op, system, max_requests=int(per_second * s.warmup) + 100)
            warm = attack(
                vegeta,
                warm_file,
                work / "warmup.bin",
                duration=s.warmup,
                rate=rate,
                concurrency=s.concurrency,
                timeout=timeout,
            )
            warm_file.unlink(missing_ok=True)
            entry["warmup"] = {
                "requests": warm.report.get("requests"),
                "status_codes": warm.report.get("status_codes"),
            }
        targets_file, count = factory.write(
            op, system, max_requests=int(per_second * s.duration) + 100
        )
        entry["targets"] = count
        entry["settle_before"] = self.settle(superuser_url, roots)
        cpu_before, busy_before = cpu.snapshot(roots), cpu.machine_busy()
        own_before = cpu.own_seconds()
        result = attack(
            vegeta,
            targets_file,
            work / "attack.bin",
            duration=s.duration,
            rate=rate,
            concurrency=s.concurrency,
            timeout=timeout,
        )
        cpu_after, busy_after = cpu.snapshot(roots), cpu.machine_busy()
        own_after = cpu.own_seconds()
        targets_file.unlink(missing_ok=True)
        entry["result"] = summarise(result.report, EXPECTED_STATUS[op])
        usage = cpu.usage(cpu_before, cpu_after, result.wall_seconds)
        usage["vegeta"] = round(100 * result.cpu_seconds / result.wall_seconds, 1)
        usage["bench"] = round(100 * (own_after - own_before) / result.wall_seconds, 1)
        usage["machine"] = round(100 * (busy_after[0] - busy_before[0]) / result.wall_seconds, 1)
        # Whatever else ran on the machine meanwhile (another build, another stack): the
        # figures of a scenario with much of it are not to be trusted.
        usage["outside"] = round(
            max(0.0, usage["machine"] - sum(v for k, v in usage.items() if k != "machine")), 1
        )
        entry["cpu"] = usage
        entry["outbox_backlog_after"] = asyncio.run(_outbox_backlog(superuser_url))
        r = entry["result"]
        if rate is not None and r["rate"] < 0.95 * rate:
            entry["note"] = f"sent only {r['rate']:.1f} req/s of the {rate} asked"
        lat = r["latency_ms"]
        flag = "" if r["success_ratio"] == 1 else f"  !! ERRORS: status codes {r['status_codes']}"
        say(
            f"bench:   {r['throughput']:.1f} req/s  p50 {lat['p50']:.2f} ms  "
            f"p95 {lat['p95']:.2f} ms  "
            f"p99 {lat['p99']:.2f} ms  ok {100 * r['success_ratio']:.2f}%  vegeta CPU "
            f"{usage['vegeta']:.0f}%{flag}"
        )
        return entry

    # ----- the run --------------------------------------------------------------------
    def run(self) -> int:
        from .stack import GATEWAY_BENCH_ENV, BenchStack

        s = self.settings
        started_at = dt.datetime.now(dt.UTC)
        stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
        self.results = {
            "started_at": started_at.isoformat(),
            "machine": {
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "platform": py_platform.platform(),
            },
            "git": _git(self.repo_root),
            "settings": {
                "duration_s": s.duration,
                "warmup_s": s.warmup,
                "patients": s.patients,
                "concurrency": s.concurrency,
                "rate": s.rate,
                "loader": s.loader,
                "operations": list(s.operations),
                "systems": list(s.systems),
                "modes": list(s.modes),
            },
            "scenarios": self.scenarios,
        }
        broken: str | None = None
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        stack = BenchStack(say)
        work = stack.config.state_dir / "work"
        try:
            vegeta = ensure_vegeta(self.repo_root, say)
            self.results["vegeta"] = str(vegeta)
            t0 = time.monotonic()
            handle = stack.start(floor="floor" in s.systems)
            self.results["gateway_env"] = {name: os.environ.get(name) for name in GATEWAY_BENCH_ENV}
            self.results["stack_start_seconds"] = round(time.monotonic() - t0, 1)
            database = handle.databases["patient-index"]
            say(f"bench: generating {s.patients:,} patients")
            numbers = NhsNumbers()
            patients = list(generate(s.patients, numbers, seed=s.seed))
            say(f"bench: loading them ({s.loader})")
            stats = asyncio.run(
                load(
                    patients,
                    app_url=database.app_url,
                    superuser_url=database.superuser_url,
                    method=s.loader,
                    say=say,
                )
            )
            self.results["load"] = stats.as_dict()
            say(
                f"bench: loaded {stats.patients:,} patients in {stats.seconds:.1f}s "
                f"(+{stats.vacuum_seconds:.1f}s VACUUM ANALYZE)"
            )
            if s.loader == "handlers":
                say(
                    f"bench: relay drained the load's events: {self.settle(database.superuser_url)}"
                )

            keys = stack.test_stack.keys
            tokens = {
                role: {p: keys.mint_token(role, p) for p in PRACTICES}
                for role in ("gp", "receptionist")
            }
            systems: dict[str, System] = {}
            missing: dict[str, str] = {}
            if "gateway" in s.systems:
                if stack.has_gateway:
                    systems["gateway"] = System("gateway", handle.fhir_base, tokens)
                else:
                    missing["gateway"] = (
                        "the gateway is not there (python -m gpsoc_gateway missing)"
                    )
            if "direct" in s.systems:
                systems["direct"] = System("direct", handle.service_urls["patient-index"], tokens)
            if "floor" in s.systems and stack.floor:
                systems["floor"] = System("floor", stack.floor.url, {})
            self.results["stack"] = {name: system.base_url for name, system in systems.items()}

            factory = TargetFactory(work / "targets", patients, numbers, seed=s.seed + 1)
            roots = stack.process_roots()
            for name in ("floor", "direct", "gateway"):
                if name not in s.systems:
                    continue
                ops = [op for op in s.operations if name != "floor" or op in FLOOR_OPERATIONS]
                for op in ops:
                    problem = missing.get(name)
                    if problem is None:
                        self.settle(database.superuser_url, roots)
                        problem = self.sanity(systems[name], op, factory)
                    for mode in s.modes:
                        self.check_processes(stack, f"{name} {op} {mode}")
                        over = self.over_capacity(name, op, mode)
                        if over and not problem:
                            say(
                                f"bench: !! {OPERATION_TITLES[op]} via {SYSTEM_TITLES[name]} at "
                                f"{s.rate} req/s SKIPPED: {over}"
                            )
                            self.scenarios.append(
                                {"system": name, "operation": op, "mode": mode, "skipped": over}
                            )
                            continue
                        if problem:
                            say(
                                f"bench: !! {OPERATION_TITLES[op]} via {SYSTEM_TITLES[name]} "
                                f"({mode}) "
                                f"NOT RUN: {problem}"
                            )
                            self.scenarios.append(
                                {"system": name, "operation": op, "mode": mode, "error": problem}
                            )
                            continue
                        self.scenarios.append(
                            self.scenario(
                                vegeta,
                                systems[name],
                                op,
                                mode,
                                factory,
                                roots,
                                database.superuser_url,
                                work,
                            )
                        )
        except (KeyboardInterrupt, _Terminated):
            broken = "interrupted"
            say("bench: interrupted; stopping the stack")
        except (VegetaError, Exception) as error:  # noqa: BLE001 - reported, then the stack stops
            broken = f"{type(error).__name__}: {error}"
            say(f"bench: the run broke: {broken}")
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if broken is None:
                self.check_processes(stack, "the end of the run")
            try:
                stack.stop()
            except Exception as error:  # noqa: BLE001
                say(f"bench: while stopping the stack: {error}")
            signal.signal(signal.SIGTERM, previous)
            shutil.rmtree(work, ignore_errors=True)

        self.results["process_deaths"] = self.dead
        if self.dead and not broken:
            broken = "platform process(es) died during the run: " + ", ".join(self.dead)
        self.results["finished_at"] = dt.datetime.now(dt.UTC).isoformat()
        self.results["broken"] = broken
        self.results["targets"] = report.evaluate_targets(self.scenarios, rate=s.rate)
        self.results["layer_ratios"] = report.layer_ratios(self.scenarios)
        path = report.save(self.results, s.results_dir, stamp)
        self.print_summary(path)
        not_run = [sc for sc in self.scenarios if "error" in sc]
        return 1 if broken or not_run else 0

    def print_summary(self, path: Path) -> None:
        s = self.settings
        r = self.results
        say("")
        say("=" * 110)
        load_info = r.get("load", {})
        say(
            f" openGPSoC bench  {r['started_at']}  {r['machine']['cpus']} CPUs  "
            f"{load_info.get('patients', 0):,} patients  {s.duration:g}s per scenario "
            f"(+{s.warmup:g}s warm-up)  commit {r['git']['commit'][:10]}"
            f"{'+dirty' if r['git']['dirty'] else ''}"
        )
        say("=" * 110)
        say(report.table(self.scenarios, {"concurrency": s.concurrency, "rate": s.rate}))
        say("")
        say("Saturation throughput (req/s) and what each layer keeps of the one below it:")
        say(report.ratio_table(r["layer_ratios"]))
        say("")
        vegeta_max = max(
            (sc["cpu"].get("vegeta", 0) for sc in self.scenarios if "cpu" in sc), default=0
        )
        say(f"Load generator: vegeta used at most {vegeta_max:.0f}% of one core in any scenario.")
        outside = max(
            (sc["cpu"].get("outside", 0) for sc in self.scenarios if "cpu" in sc), default=0
        )
        if outside > OUTSIDE_CPU_WARNING:
            say(
                f"!! Other processes on this machine used up to {outside:.0f}% of a core during a "
                "scenario (OUTSIDE in the CPU column): those figures understate the platform."
            )
        errors = [
            sc for sc in self.scenarios if "result" in sc and sc["result"]["success_ratio"] < 1
        ]
        if errors:
            say(
                f"!! {len(errors)} scenario(s) had requests that did not answer as expected; "
                "see above."
            )
        say("")
        say(report.target_lines(r["targets"]))
        if r.get("broken"):
            say(f"!! THE RUN BROKE: {r['broken']}")
        say(f"Results: {path} (and {path.parent / 'latest.json'})")
