"""A small supervisor for the platform's processes.

Each child runs in its own process group (its own session), so a Ctrl-C in the terminal
reaches only devstack, which then stops the children in reverse start order: the gateway
before the services, the services before Kafka and PostgreSQL. Output goes to
<state>/logs/<name>.log and, in foreground mode, to the terminal with a [name] prefix.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class ProcessFailed(RuntimeError):
    """A step exited non-zero, or a long-running child died."""


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    process: subprocess.Popen
    log_file: Path
    _pump: threading.Thread | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _pump_output(stream, log_path: Path, prefix: str, echo: bool) -> None:
    # One thread per echoed child: copy each line to its log file and the terminal.
    with open(log_path, "ab") as log:
        for line in iter(stream.readline, b""):
            log.write(line)
            log.flush()
            if echo:
                sys.stdout.write(f"{prefix}{line.decode(errors='replace')}")
                sys.stdout.flush()
    stream.close()


class Supervisor:
    def __init__(self, logs_dir: Path, *, echo: bool = False) -> None:
        self.logs_dir = Path(logs_dir)
        self.echo = echo
        self.children: list[Child] = []

    def _spawn(
        self, name: str, argv: Sequence[str], env: Mapping[str, str] | None, cwd: Path | None
    ) -> Child:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_file = self.logs_dir / f"{name}.log"
        with open(log_file, "ab") as log:
            log.write(
                f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(argv)}\n".encode()
            )
        common = dict(
            env=dict(env) if env is not None else None,
            cwd=str(cwd) if cwd else None,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if self.echo:
            process = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **common
            )
            pump = threading.Thread(
                target=_pump_output,
                args=(process.stdout, log_file, f"[{name}] ", True),
                daemon=True,
            )
            pump.start()
            return Child(name, list(argv), process, log_file, pump)
        with open(log_file, "ab") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, **common)
        return Child(name, list(argv), process, log_file)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        """Start a long-running child; stop_all() will stop it."""
        child = self._spawn(name, argv, env, cwd)
        self.children.append(child)
        return child

    def run_step(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 300,
    ) -> None:
        """Run a one-off command (a migration, a seed) to completion; raise if it fails."""
        child = self._spawn(name, argv, env, cwd)
        try:
            code = child.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(child, signal.SIGKILL)
            child.process.wait()
            raise ProcessFailed(
                f"{name} did not finish within {timeout}s; see {child.log_file}"
            ) from None
        if child._pump:
            child._pump.join(timeout=5)
        if code != 0:
            raise ProcessFailed(
                f"{name} failed with exit code {code}; "
                f"last lines of {child.log_file}:\n{tail(child.log_file)}"
            )

    def dead_children(self) -> list[Child]:
        return [child for child in self.children if not child.alive()]

    def stop_all(self, timeout: float = 20) -> None:
        """SIGTERM every child in reverse start order, SIGKILL what is left after timeout."""
        for child in reversed(self.children):
            if child.alive():
                _signal_group(child, signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while child.alive() and time.monotonic() < deadline:
                    time.sleep(0.1)
                if child.alive():
                    _signal_group(child, signal.SIGKILL)
                    child.process.wait()
            else:
                # The leader is gone; make sure no grandchild of its group lingers.
                _signal_group(child, signal.SIGKILL)
            if child._pump:
                child._pump.join(timeout=2)
        self.children.clear()


def _signal_group(child: Child, sig: int) -> None:
    try:
        os.killpg(child.pid, sig)  # pgid == pid: each child leads its own session
    except (ProcessLookupError, PermissionError):
        pass


def wait_http_ok(
    url: str,
    timeout: float = 60,
    *,
    alive: Callable[[], bool] | None = None,
    interval: float = 0.25,
) -> None:
    """Poll url until it answers 200. Fail at once if `alive` says the server died."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise ProcessFailed(f"the process serving {url} exited while we waited for it")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
                last_error = f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            last_error = f"HTTP {error.code}"
        except (urllib.error.URLError, OSError) as error:
            last_error = str(error)
        time.sleep(interval)
    raise ProcessFailed(f"{url} not OK within {timeout}s (last: {last_error})")
