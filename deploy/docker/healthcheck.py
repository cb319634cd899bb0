"""Container health check shared by every openGPSoC image (Docker HEALTHCHECK, compose, exec probes).

It asks PID 1 which process type the container runs (`python -m <module> <type>`):
  api                 GET http://127.0.0.1:$PORT/healthz must answer 200
  relay, consumer     GET http://127.0.0.1:$HEALTH_PORT/healthz when HEALTH_PORT is set (the
                      chassis worker runtime serves it); without it, PID 1 must be alive
  migrate, others     healthy while running (a one-shot step)
Standard library only: the image has no curl, and this must start fast.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

PROCESS_TYPES = ("api", "relay", "consumer", "migrate", "seed-demo")


def process_type(cmdline: bytes) -> str | None:
    """The process type named on a command line such as `python -m patient_index relay`."""
    args = [a.decode(errors="replace") for a in cmdline.split(b"\0") if a]
    for arg in args[1:]:
        if arg in PROCESS_TYPES:
            return arg
    return None


def http_ok(port: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{int(port)}/healthz", timeout=timeout) as r:
            return r.status == 200
    except (OSError, ValueError):
        return False


def pid1_alive() -> bool:
    try:
        # Field 3 of /proc/1/stat is the state; after the command name, which may hold spaces.
        state = Path("/proc/1/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X", "T")


def main() -> int:
    try:
        kind = process_type(Path("/proc/1/cmdline").read_bytes())
    except OSError:
        kind = None
    if kind == "api":
        return 0 if http_ok(os.environ.get("PORT", "8000")) else 1
    if kind in ("relay", "consumer"):
        health_port = os.environ.get("HEALTH_PORT")
        if health_port:
            return 0 if http_ok(health_port) else 1
        return 0 if pid1_alive() else 1
    return 0 if pid1_alive() else 1


if __name__ == "__main__":
    sys.exit(main())
