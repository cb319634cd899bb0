"""One bench run: start the stack, load patients, run every scenario, report, stop."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform as py_platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import cpu, report
from .loader import superuser_connect
from .settings import OPERATION_TITLES, SUITE_SERVICES, SYSTEM_TITLES, BenchSettings
from .suites import SUITE_CLASSES, Context, PatientsSuite, Suite, per_second
from .targets import EXPECTED_STATUS, System
from .vegeta import VegetaError, attack, ensure_vegeta, summarise

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


async def _outbox_backlog(superuser_urls: dict[str, str]) -> dict[str, int]:
    """Events not yet published, per service database."""
    backlog = {}
    for name, url in superuser_urls.items():
        conn = await superuser_connect(url)
        try:
            backlog[name] = int(
                await conn.fetchval("SELECT count(*) FROM outbox")
            )
        finally:
            await conn.close()
    return backlog


class Bench:
    def __init__(self, settings: BenchSettings, repo_root: Path) -> None:
        self.settings = settings
        self.repo_root = repo_root
        self.scenarios: list[dict[str, Any]] = []
        self.results: dict[str, Any] = {}
        self.dead: dict[str, dict[str, Any]] = {}  # platform processes that died meanwhile
        self.outboxes: dict[str, str] = {}  # service -> superuser URL of its database

    # ----- steps ----------------------------------------------------------------------
    def settle(self, roots: dict[str, int] | None = None) -> dict[str, Any]:
        """Wait (bounded by BENCH_SETTLE_MAX) until the relays have published the outboxes
        and the stack is idle, so that one scenario's left-over work (events to publish,
        consumers projecting them, requests still queued after an overload) is not done on
        the next one's time."""
        started = time.monotonic()
        limit = started + self.settings.settle_max

        def pending() -> int:
            backlog = asyncio.run(_outbox_backlog(self.outboxes))
            # A dead relay never drains its outbox: do not wait for it.
            return sum(n for name, n in backlog.items() if f"{name}-relay" not in self.dead)

        backlog = pending()
        first = backlog
        while backlog and time.monotonic() < limit:
            time.sleep(0.5)
            backlog = pending()
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

    def scenario(
        self,
        vegeta: Path,
        suite: Suite,
        system: System,
        op: str,
        mode: str,
        roots: dict[str, int],
        work: Path,
    ) -> dict[str, Any]:
        s = self.settings
        rate = None if mode == "saturation" else suite.rate
        entry: dict[str, Any] = {
            "suite": suite.name,
            "system": system.name,
            "operation": op,
            "mode": mode,
            "concurrency": s.concurrency if rate is None else None,
            "target_rate": rate,
            "duration_s": s.duration,
        }
        budget = per_second(op, rate)
        title = f"{suite.name}: {OPERATION_TITLES[op]} via {SYSTEM_TITLES[system.name]}, " + (
            f"saturation ({s.concurrency} clients)" if rate is None else f"{rate} req/s"
        )
        say(f"bench: {title}")
        timeout = s.request_timeout
        if s.warmup > 0:
            warm_file, _ = suite.write(op, system, max_requests=int(budget * s.warmup) + 100)
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
        targets_file, count = suite.write(op, system, max_requests=int(budget * s.duration) + 100)
        entry["targets"] = count
        entry["settle_before"] = self.settle(roots)
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
        entry["rate_label"] = f"sat/{s.concurrency}" if rate is None else f"{rate}/s"
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
        entry["outbox_backlog_after"] = asyncio.run(_outbox_backlog(self.outboxes))
        r = entry["result"]
        notes = []
        if rate is not None and r["rate"] < 0.95 * rate:
            notes.append(f"sent only {r['rate']:.1f} req/s of the {rate} asked")
        if suite.consumes(op) and r["requests"] > count:
            notes.append(
                f"{r['requests']} requests for {count} distinct targets: vegeta repeated some "
                "(each can succeed only once)"
            )
        if notes:
            entry["note"] = "; ".join(notes)
            say(f"bench:   !! {entry['note']}")
        lat = r["latency_ms"]
        flag = "" if r["success_ratio"] == 1 else f"  !! ERRORS: status codes {r['status_codes']}"
        say(
            f"bench:   {r['throughput']:.1f} req/s  p50 {lat['p50']:.2f} ms  "
            f"p95 {lat['p95']:.2f} ms  "
            f"p99 {lat['p99']:.2f} ms  ok {100 * r['success_ratio']:.2f}%  vegeta CPU "
            f"{usage['vegeta']:.0f}%{flag}"
        )
        return entry

    def run_suite(self, vegeta: Path, suite: Suite, stack: Any, work: Path) -> None:
        """Load the suite's data, then every operation x system x mode, then its extras."""
        say(f"bench: ===== {suite.title} =====")
        self.check_processes(stack, f"loading {suite.name}")
        started = time.monotonic()
        load_problem = None
        try:
            suite.section["load"] = suite.prepare()
            suite.make_systems()
        except (KeyboardInterrupt, _Terminated):
            raise
        except Exception as error:  # noqa: BLE001 - the other suites still run
            load_problem = f"loading failed: {type(error).__name__}: {error}"
            say(f"bench: !! {suite.name}: {load_problem}")
        suite.section["load_seconds"] = round(time.monotonic() - started, 1)
        roots = stack.process_roots()
        if load_problem is None:
            say(f"bench: {suite.name}: settling after the load: {self.settle(roots)}")
        for name in suite.system_names():
            for op in suite.ops_for(name):
                problem = load_problem or suite.missing.get(name)
                if problem is None:
                    self.settle(roots)
                    try:
                        problem = suite.sanity(suite.systems[name], op)
                    except Exception as error:  # noqa: BLE001
                        problem = f"sanity request failed: {type(error).__name__}: {error}"
                for mode in suite.modes_for(op):
                    self.check_processes(stack, f"{suite.name} {name} {op} {mode}")
                    base = {"suite": suite.name, "system": name, "operation": op, "mode": mode}
                    rate = None if mode == "saturation" else suite.rate
                    base["target_rate"] = rate
                    over = self.over_capacity_in(suite, name, op, mode)
                    if problem:
                        say(
                            f"bench: !! {suite.name}: {OPERATION_TITLES[op]} via "
                            f"{SYSTEM_TITLES[name]} ({mode}) NOT RUN: {problem}"
                        )
                        self.record(suite, {**base, "error": problem})
                        continue
                    if over:
                        say(
                            f"bench: !! {OPERATION_TITLES[op]} via {SYSTEM_TITLES[name]} at "
                            f"{suite.rate} req/s SKIPPED: {over}"
                        )
                        self.record(suite, {**base, "skipped": over})
                        continue
                    self.record(
                        suite,
                        self.scenario(vegeta, suite, suite.systems[name], op, mode, roots, work),
                    )
        if load_problem is None:
            self.settle(roots)
            try:
                suite.after()
            except (KeyboardInterrupt, _Terminated):
                raise
            except Exception as error:  # noqa: BLE001
                say(f"bench: !! {suite.name}: {type(error).__name__}: {error}")
                suite.section["after_error"] = f"{type(error).__name__}: {error}"

    def record(self, suite: Suite, entry: dict[str, Any]) -> None:
        self.scenarios.append(entry)
        suite.section["scenarios"].append(entry)

    def over_capacity_in(self, suite: Suite, system: str, op: str, mode: str) -> str | None:
        if mode != "rate":
            return None
        sat = report.find(suite.section["scenarios"], system, op, "saturation")
        if sat is None:
            return None
        capacity = sat["result"]["throughput"]
        if capacity < suite.rate:
            return (
                f"capacity at saturation is {capacity:.1f} req/s, below {suite.rate} "
                "req/s: it cannot be sustained"
            )
        return None

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
                "suites": list(s.suites),
                "appointments": {
                    "practices": s.appointment_practices,
                    "patients_per_practice": s.appointment_patients_per_practice,
                    "rate": s.appointments_rate,
                    "contention_clients": s.contention_clients,
                    "contention_slots": s.contention_slots,
                },
                "prescribing": {"rate": s.prescribing_rate},
                "clinical": {
                    "patients": s.clinical_patients,
                    "entries_per_patient": s.clinical_entries,
                    "rate": s.clinical_rate,
                },
            },
            "suites": {},
        }
        broken: str | None = None
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        stack = BenchStack(say)
        work = stack.config.state_dir / "work"
        self.suites: list[Suite] = []
        try:
            vegeta = ensure_vegeta(self.repo_root, say)
            self.results["vegeta"] = str(vegeta)
            t0 = time.monotonic()
            services = tuple(service for suite in s.suites for service in SUITE_SERVICES[suite])
            handle = stack.start(
                services=services, floor="floor" in s.systems and "patients" in s.suites
            )
            self.results["gateway_env"] = {name: os.environ.get(name) for name in GATEWAY_BENCH_ENV}
            self.results["stack_start_seconds"] = round(time.monotonic() - t0, 1)
            self.outboxes = {
                name: handle.databases[name].superuser_url for name in handle.service_urls
            }
            ctx = Context(
                settings=s,
                repo_root=self.repo_root,
                handle=handle,
                keys=stack.test_stack.keys,
                work=work,
                say=say,
                has_gateway=stack.has_gateway,
            )
            for name in s.suites:
                if name == "patients":
                    suite: Suite = PatientsSuite(ctx, stack.floor.url if stack.floor else None)
                else:
                    suite = SUITE_CLASSES[name](ctx)
                self.suites.append(suite)
                self.results["suites"][name] = suite.section
                suite.section["title"] = suite.title
                self.run_suite(vegeta, suite, stack, work)
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
        targets = []
        for suite in self.suites:

            def find(system: str, op: str, mode: str, _suite: Suite = suite):
                return report.find(_suite.section["scenarios"], system, op, mode)

            try:
                suite.section["targets"] = suite.targets(find)
            except Exception as error:  # noqa: BLE001 - a verdict must not lose the results
                suite.section["targets"] = []
                say(f"bench: {suite.name}: could not evaluate targets: {error!r}")
            targets += suite.section["targets"]
        self.results["targets"] = targets
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
        say(
            f" openGPSoC bench  {r['started_at']}  {r['machine']['cpus']} CPUs  "
            f"suites {','.join(s.suites)}  {s.duration:g}s per scenario "
            f"(+{s.warmup:g}s warm-up)  commit {r['git']['commit'][:10]}"
            f"{'+dirty' if r['git']['dirty'] else ''}"
        )
        say("=" * 110)
        for name, section in r["suites"].items():
            say(f" {section.get('title', name)}: loaded {report.load_text(section.get('load'))}")
        say("")
        say(report.table(self.scenarios, {"concurrency": s.concurrency, "rate": s.rate}))
        contention = r["suites"].get("appointments", {}).get("contention")
        if contention:
            say("")
            say(report.contention_text(contention))
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
