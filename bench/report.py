"""The bench's verdicts, tables and result files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .settings import OPERATION_TITLES, SYSTEM_TITLES

# A target is only met by a scenario that also answered (almost) every request correctly.
MIN_SUCCESS = 0.999


def find(scenarios: list[dict[str, Any]], system: str, op: str, mode: str) -> dict[str, Any] | None:
    for s in scenarios:
        if s["system"] == system and s["operation"] == op and s["mode"] == mode and "result" in s:
            return s
    return None


def layer_ratios(scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Saturation throughput per operation on each system, and what each layer keeps."""
    rows = []
    for op in OPERATION_TITLES:
        tput = {}
        for system in SYSTEM_TITLES:
            s = find(scenarios, system, op, "saturation")
            if s:
                tput[system] = s["result"]["throughput"]
        if not tput:
            continue
        row: dict[str, Any] = {
            "operation": op,
            "throughput": {k: round(v, 1) for k, v in tput.items()},
        }
        if tput.get("floor") and "direct" in tput:
            row["service_over_floor"] = round(tput["direct"] / tput["floor"], 3)
        if tput.get("direct") and "gateway" in tput:
            row["gateway_over_service"] = round(tput["gateway"] / tput["direct"], 3)
        if tput.get("floor") and "gateway" in tput:
            row["gateway_over_floor"] = round(tput["gateway"] / tput["floor"], 3)
        rows.append(row)
    return rows


def _cpu_text(cpu: dict[str, float]) -> str:
    short = {
        "patient-index-api": "api",
        "patient-index-relay": "relay",
        "patient-index-consumer": "consumer",
        "gateway": "gw",
        "postgres": "pg",
        "kafka": "kafka",
        "floor": "floor",
        "appointments-api": "appt",
        "appointments-relay": "appt-relay",
        "appointments-consumer": "appt-cons",
        "prescribing-api": "rx",
        "prescribing-relay": "rx-relay",
        "prescribing-consumer": "rx-cons",
        "clinical-notes-api": "notes",
        "clinical-notes-relay": "notes-relay",
        "clinical-notes-consumer": "notes-cons",
        "vegeta": "vegeta",
        "outside": "OUTSIDE",
    }
    items = sorted(
        ((v, short.get(k, k)) for k, v in cpu.items() if v >= 3 and k != "machine"), reverse=True
    )
    return " ".join(f"{name} {value:.0f}" for value, name in items)


def table(scenarios: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    header = (
        f"{'operation':<21} {'via':<8} {'mode':<11} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8} {'ok':>7}  CPU % of a core (2 cores = 200)"
    )
    lines = [header, "-" * len(header)]
    suite = None
    for s in scenarios:
        if s.get("suite") != suite:
            suite = s.get("suite")
            lines.append(f"[{suite}]")
        rate = s.get("target_rate") or settings["rate"]
        mode = "sat/" + str(settings["concurrency"]) if s["mode"] == "saturation" else f"{rate}/s"
        label = f"{OPERATION_TITLES[s['operation']]:<21} {SYSTEM_TITLES[s['system']]:<8} {mode:<11}"
        if "skipped" in s:
            lines.append(f"{label} SKIPPED: {s['skipped']}")
            continue
        if "result" not in s:
            lines.append(f"{label} NOT RUN: {s.get('error', '?')}")
            continue
        r = s["result"]
        lat = r["latency_ms"]
        ok = f"{100 * r['success_ratio']:.1f}%"
        line = (
            f"{label} {r['throughput']:>8.1f} {lat['p50']:>8.2f} {lat['p95']:>8.2f} "
            f"{lat['p99']:>8.2f} {lat['max']:>8.1f} {ok:>7}  "
            f"busy {s['cpu'].get('machine', 0):.0f}: {_cpu_text(s['cpu'])}"
        )
        lines.append(line)
        if r["success_ratio"] < 1:
            codes = ", ".join(f"{k}: {v}" for k, v in sorted(r["status_codes"].items()))
            lines.append(
                f"{'':<21} !! ERRORS: expected {r['expected_status']}; got {codes}; "
                f"{'; '.join(r['errors'][:3])}"
            )
    return "\n".join(lines)


def ratio_table(ratios: list[dict[str, Any]]) -> str:
    lines = [
        f"{'operation':<21} {'floor':>8} {'service':>8} {'gateway':>8} {'svc/floor':>10} "
        f"{'gw/svc':>8} {'gw/floor':>9}"
    ]

    def f(value: Any, width: int, fmt: str) -> str:
        return f"{value:>{width}{fmt}}" if value is not None else f"{'-':>{width}}"

    for row in ratios:
        t = row["throughput"]
        lines.append(
            f"{OPERATION_TITLES[row['operation']]:<21} {f(t.get('floor'), 8, '.1f')} "
            f"{f(t.get('direct'), 8, '.1f')} {f(t.get('gateway'), 8, '.1f')} "
            f"{f(row.get('service_over_floor'), 10, '.3f')} "
            f"{f(row.get('gateway_over_service'), 8, '.3f')} "
            f"{f(row.get('gateway_over_floor'), 9, '.3f')}"
        )
    return "\n".join(lines)


def target_lines(targets: list[dict[str, Any]]) -> str:
    lines = []
    for t in targets:
        measured = "-" if t["measured"] is None else t["measured"]
        note = f"  ({t['note']})" if t["note"] else ""
        suite = f"[{t['suite']}] " if t.get("suite") else ""
        lines.append(
            f"{t['status']:<8} {suite}{t['target']}: {measured} (target {t['goal']}){note}"
        )
    return "\n".join(lines)


def load_text(load: dict[str, Any] | None) -> str:
    if not load:
        return "-"
    keys = (
        "patients",
        "slots",
        "practices",
        "patients_projected",
        "entries",
        "issue_plans",
        "authorisation_patients",
    )
    parts = [f"{k} {load[k]:,}" for k in keys if isinstance(load.get(k), int)]
    seconds = load.get("seconds")
    if seconds is None:
        seconds = sum(
            v for k, v in load.items() if k.endswith("seconds") and isinstance(v, int | float)
        )
    return ", ".join(parts) + f" ({seconds:.0f}s)"


def contention_text(c: dict[str, Any]) -> str:
    if "double_bookings" not in c:
        return f"Contention: NOT RUN ({c.get('error', '?')})"
    return (
        f"Contention ({c['clients']} clients x {c['slots']} popular slots via {c['via']}, "
        f"{c['seconds']}s): {c['created_201']} x 201, {c['conflict_409']} x 409 "
        f"({', '.join(c['conflict_codes']) or '-'}), all statuses {c['status_codes']}; "
        f"{c['popular_slots_booked']}/{c['slots']} popular slots booked; double bookings "
        f"found by the database query: {c['double_bookings']}"
    )


def save(results: dict[str, Any], results_dir: Path, stamp: str) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{stamp}.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    shutil.copyfile(path, results_dir / "latest.json")
    return path
