"""A single-node Apache Kafka (KRaft: broker and controller in one JVM) for the local stack.

The jars come from Maven Central through the committed infra/kafka/pom.xml and are cached
per pom hash under <repo>/.state/kafka-lib/. Data lives in <state>/kafka/data. The broker
listens on 127.0.0.1 only; topics must be created explicitly (auto-creation is off, so a
typo in a topic name fails loudly instead of creating a stray topic).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from devstack._sync import run_sync
from devstack.config import StackConfig

TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code
JVM_HEAP = ("-Xmx512m", "-Xms256m")  # the machine has 2 cores and shares them with PG + services
STOP_GRACE_SECONDS = 30


class KafkaStackError(RuntimeError):
    pass


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise KafkaStackError("java not found; Kafka needs Java 17 (openjdk-17-jdk-headless)")
    return found


class KafkaBroker:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.bootstrap = config.kafka_bootstrap
        self.home = config.kafka_dir
        self.data_dir = self.home / "data"
        self.properties_file = self.home / "server.properties"
        self.pid_file = self.home / "kafka.pid"
        self.log_file = config.logs_dir / "kafka.log"
        self.started_by_us = False

    # ----- jars ---------------------------------------------------------------------
    def resolve_jars(self) -> Path:
        """Copy the broker's jars out of Maven (once per pom content) and return the dir."""
        pom = self.config.kafka_pom
        digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
        lib_dir = self.config.kafka_lib_cache / digest
        marker = lib_dir / ".complete"
        if marker.exists():
            return lib_dir
        if lib_dir.exists():
            shutil.rmtree(lib_dir)  # a half-finished earlier attempt
        lib_dir.mkdir(parents=True)
        mvn = shutil.which("mvn")
        if not mvn:
            raise KafkaStackError("mvn not found; Kafka's jars are resolved with Maven")
        argv = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={lib_dir}",
        ]
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise KafkaStackError(f"resolving Kafka jars failed:\n{result.stdout}\n{result.stderr}")
        marker.write_text(pom.name + "\n")
        return lib_dir

    # ----- status -------------------------------------------------------------------
    async def _metadata_ok_async(self, wait_seconds: float = 5) -> bool:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, request_timeout_ms=int(wait_seconds * 1000)
        )
        try:
            await asyncio.wait_for(admin.start(), wait_seconds)
            await asyncio.wait_for(admin.list_topics(), wait_seconds)
            return True
        except (TimeoutError, KafkaError, OSError):
            return False
        finally:
            try:
                await admin.close()
            except Exception:  # closing a never-started client may fail; nothing to clean
                pass

    def is_running(self) -> bool:
        """True if a broker answers a metadata request on our bootstrap address."""
        if not _port_open(self.config.kafka_port):
            return False
        return run_sync(self._metadata_ok_async())

    def _our_pid(self) -> int | None:
        """The pid from our pid file, if that process is still our broker."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        # Guard against pid reuse: only signal a JVM running this state dir's config.
        if b"kafka.Kafka" in cmdline and str(self.properties_file).encode() in cmdline:
            return pid
        return None

    # ----- lifecycle ----------------------------------------------------------------
    def ensure_started(self, timeout: float = 120) -> None:
        if self.is_running():
            self.started_by_us = False
            return
        if _port_open(self.config.kafka_port) or _port_open(self.config.kafka_controller_port):
            raise KafkaStackError(
                f"port {self.config.kafka_port} or {self.config.kafka_controller_port} is taken "
                "by something that is not a working Kafka; stop it or change the "
                "KAFKA_PORT / KAFKA_CONTROLLER_PORT settings"
            )
        lib_dir = self.resolve_jars()
        self.home.mkdir(parents=True, exist_ok=True)
        self.config.logs_dir.mkdir(parents=True, exist_ok=True)
        self._write_properties()
        classpath = f"{lib_dir}/*"
        if not (self.data_dir / "meta.properties").exists():
            self._format(classpath)
        argv = [
            _java(),
            *JVM_HEAP,
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.config.kafka_log4j_config}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(self.properties_file),
        ]
        log = open(self.log_file, "ab")
        # Own session: a Ctrl-C in the terminal must not hit the broker directly; devstack
        # stops it in order, after the services that use it.
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.home,
            start_new_session=True,
        )
        log.close()
        self.pid_file.write_text(f"{process.pid}\n")
        self.started_by_us = True
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                self.started_by_us = False
                raise KafkaStackError(
                    f"Kafka exited with {process.returncode} while starting; "
                    f"last lines of {self.log_file}:\n{_tail(self.log_file)}"
                )
            if _port_open(self.config.kafka_port) and run_sync(self._metadata_ok_async()):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise KafkaStackError(
                    f"Kafka did not answer within {timeout}s; see {self.log_file}"
                )
            time.sleep(0.5)

    def stop(self, *, force: bool = False) -> None:
        """SIGTERM (controlled shutdown), then SIGKILL after 30 s. Only if we started it,
        or with force (`infra down`) if the pid file names our broker."""
        if not (self.started_by_us or force):
            return
        pid = self._our_pid()
        self.started_by_us = False
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.2)
        _reap(pid)
        self.pid_file.unlink(missing_ok=True)

    def _write_properties(self) -> None:
        port, controller = self.config.kafka_port, self.config.kafka_controller_port
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # A static voter set (rather than --standalone's dynamic one) keeps the
            # controller address in this file, so changing the port needs no reformat.
            "controller.quorum.voters": f"1@127.0.0.1:{controller}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            # Fewer internal partitions: faster first group join on a 2-core machine.
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Consumers in tests join at once instead of waiting 3 s for peers.
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.retention.hours": "168",
        }
        self.properties_file.write_text(
            "# Written by devstack at every start; edit devstack/kafka.py instead.\n"
            + "".join(f"{key}={value}\n" for key, value in settings.items())
        )

    def _format(self, classpath: str) -> None:
        cluster_id_file = self.home / "cluster.id"
        if not cluster_id_file.exists():
            cluster_id_file.write_text(
                base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=") + "\n"
            )
        cluster_id = cluster_id_file.read_text().strip()
        argv = [
            _java(),
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={self.config.kafka_log4j_config}",
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            # One argument, `=`-joined: a base64 id may begin with "-", which the tool's
            # parser would otherwise take for an option (1 fresh machine in 64).
            f"--cluster-id={cluster_id}",
            "-c",
            str(self.properties_file),
            "--ignore-formatted",
        ]
        result = subprocess.run(argv, capture_output=True, text=True, cwd=self.home)
        if result.returncode != 0:
            raise KafkaStackError(
                f"formatting Kafka storage failed:\n{result.stdout[-3000:]}\n{result.stderr}"
            )

    # ----- topics -------------------------------------------------------------------
    def create_topics(self, topics: dict[str, int], replication_factor: int = 1) -> None:
        """Create each topic with its partition count; existing topics are left alone."""
        run_sync(self._create_topics_async(topics, replication_factor))

    async def _create_topics_async(self, topics: dict[str, int], replication_factor: int) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            new = [
                NewTopic(name, partitions, replication_factor)
                for name, partitions in topics.items()
            ]
            response = await admin.create_topics(new, timeout_ms=30000)
            failures = [
                f"{error[0]}: error {error[1]} {error[2] if len(error) > 2 else ''}"
                for error in response.topic_errors
                if error[1] not in (0, TOPIC_ALREADY_EXISTS)
            ]
            if failures:
                raise KafkaStackError("creating topics failed: " + "; ".join(failures))
        finally:
            await admin.close()


def _port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        # A zombie child of ours still "exists"; reap it so the loop ends.
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
