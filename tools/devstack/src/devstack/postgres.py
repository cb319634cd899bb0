"""A private PostgreSQL cluster for the local stack, built from the system's binaries.

The cluster lives in <state>/pg/data, listens on 127.0.0.1:<port> only, and keeps its
unix socket inside the state dir. Over the socket the superuser `postgres` is trusted
(only local processes that can reach the state dir can use it: the test suite and
devstack itself); every TCP connection needs a scram-sha-256 password.

Each service gets two roles: `<db>_owner` owns the database and runs migrations, and
`<db>_app` is what the running service connects as. The app role is neither owner nor
superuser nor BYPASSRLS, so PostgreSQL row-level security applies to it.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from devstack._sync import run_sync
from devstack.config import StackConfig

# Debian keeps the server programs in /usr/lib/postgresql/<major>/bin; prefer 15 (the
# version the platform targets), then the newest installed, then PATH.
PG_BIN_CANDIDATES = (
    Path("/usr/lib/postgresql/15/bin"),
    *sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: -int(p.parent.name) if p.parent.name.isdigit() else 0,
    ),
    Path("/usr/local/bin"),
    Path("/usr/bin"),
)
PG_SYSTEM_USER = "postgres"
SUPERUSER = "postgres"
# A unix socket path must fit in sun_path (108 bytes, including the file name).
_MAX_SOCKET_DIR_LEN = 90


class PostgresError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServiceDatabase:
    """Connection strings of one service's database. The URLs carry passwords: never log them."""

    name: str
    owner_user: str
    app_user: str
    owner_url: str  # migrations: postgresql://<db>_owner:pw@127.0.0.1:port/<db>
    app_url: str  # the running service: postgresql://<db>_app:pw@127.0.0.1:port/<db>
    superuser_url: str  # tests only: superuser over the unix socket, no password

    @property
    def admin_url(self) -> str:
        return self.superuser_url


def _pg_bin(tool: str) -> str:
    for directory in PG_BIN_CANDIDATES:
        if (directory / tool).exists():
            return str(directory / tool)
    found = shutil.which(tool)
    if found:
        return found
    raise PostgresError(f"cannot find the PostgreSQL program {tool!r}; install postgresql-15")


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _as_cluster_user(argv: list[str]) -> list[str]:
    # postgres refuses to run as root, so as root every server program runs as the
    # `postgres` system user; otherwise as ourselves.
    if _running_as_root():
        return ["runuser", "-u", PG_SYSTEM_USER, "--", *argv]
    return argv


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class PostgresCluster:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.port = config.pg_port
        self.pg_dir = self._choose_pg_dir()
        self.data_dir = self.pg_dir / "data"
        # The server writes its log itself, so it must be somewhere it can reach.
        in_state = self.pg_dir == config.pg_dir
        self.log_file = (config.logs_dir if in_state else self.pg_dir) / "postgres.log"
        self.socket_dir = self._choose_socket_dir()
        self.started_by_us = False

    def _choose_pg_dir(self) -> Path:
        """<state>/pg, unless (as root) the postgres user cannot reach it, e.g. a checkout
        under /root (mode 700). Then a stable per-state-dir directory under /var/tmp,
        rather than loosening the permissions of the user's directories."""
        preferred = self.config.pg_dir
        if not _running_as_root() or _traversable_by(preferred, PG_SYSTEM_USER) is None:
            return preferred
        digest = hashlib.sha256(str(self.config.state_dir).encode()).hexdigest()[:12]
        return Path("/var/tmp") / f"gpsoc-pg-{digest}"

    def _choose_socket_dir(self) -> Path:
        preferred = self.pg_dir / "run"
        if len(str(preferred)) <= _MAX_SOCKET_DIR_LEN:
            return preferred
        # A deep checkout would overflow sun_path; use a short, stable per-state-dir path.
        digest = hashlib.sha256(str(self.config.state_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"gpsoc-pg-{digest}"

    # ----- status -------------------------------------------------------------------
    async def _superuser_connect(self, database: str = "postgres") -> asyncpg.Connection:
        return await asyncpg.connect(
            host=str(self.socket_dir), port=self.port, user=SUPERUSER, database=database, timeout=5
        )

    async def _server_data_dir_async(self) -> str | None:
        try:
            conn = await self._superuser_connect()
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return None
        try:
            return await conn.fetchval("SHOW data_directory")
        finally:
            await conn.close()

    def is_running(self) -> bool:
        """True if our cluster (this state dir's data directory) answers on our socket."""
        if not (self.socket_dir / f".s.PGSQL.{self.port}").exists():
            return False
        data_dir = run_sync(self._server_data_dir_async())
        return data_dir is not None and os.path.realpath(data_dir) == os.path.realpath(
            self.data_dir
        )

    # ----- lifecycle ----------------------------------------------------------------
    def ensure_started(self, timeout: float = 60) -> None:
        """Start the cluster unless it already runs; remember whether we started it."""
        if self.is_running():
            self.started_by_us = False
            return
        if _port_open("127.0.0.1", self.port):
            raise PostgresError(
                f"port 127.0.0.1:{self.port} is taken by something that is not this stack's "
                f"PostgreSQL ({self.data_dir}); stop it or set "
                f"{'GPSOC_TEST_' if self.config.profile == 'test' else 'GPSOC_'}PG_PORT"
            )
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._write_config()
        argv = [
            _pg_bin("pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            str(int(timeout)),
            "start",
        ]
        result = subprocess.run(_as_cluster_user(argv), capture_output=True, text=True)
        if result.returncode != 0:
            raise PostgresError(
                f"pg_ctl start failed ({result.returncode}): {result.stderr.strip()}\n"
                f"--- last lines of {self.log_file} ---\n{_tail(self.log_file)}"
            )
        self.started_by_us = True
        deadline = time.monotonic() + timeout
        while not self.is_running():
            if time.monotonic() > deadline:
                raise PostgresError(f"PostgreSQL did not become ready; see {self.log_file}")
            time.sleep(0.2)

    def stop(self, *, force: bool = False) -> None:
        """Stop the cluster if we started it (or, with force, whoever did)."""
        if not (self.started_by_us or force):
            return
        if not (self.data_dir / "postmaster.pid").exists():
            self.started_by_us = False
            return
        argv = [_pg_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop"]
        result = subprocess.run(_as_cluster_user(argv), capture_output=True, text=True)
        if result.returncode != 0 and (self.data_dir / "postmaster.pid").exists():
            raise PostgresError(f"pg_ctl stop failed: {result.stderr.strip()}")
        self.started_by_us = False

    def _prepare_dirs(self) -> None:
        for directory in (self.config.state_dir, self.config.logs_dir, self.pg_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(mode=0o755, exist_ok=True)
        self.log_file.touch(exist_ok=True)
        if _running_as_root():
            blocked = _traversable_by(self.pg_dir, PG_SYSTEM_USER)
            if blocked is not None:
                raise PostgresError(
                    f"the {PG_SYSTEM_USER!r} system user cannot traverse {blocked} "
                    "(needed to reach "
                    f"{self.pg_dir}); run `chmod o+x {blocked}` or move the checkout"
                )
            pg = pwd.getpwnam(PG_SYSTEM_USER)
            for path in (self.pg_dir, self.socket_dir, self.log_file):
                os.chown(path, pg.pw_uid, pg.pw_gid)
            for root, dirs, files in os.walk(self.data_dir):
                os.chown(root, pg.pw_uid, pg.pw_gid)
                for name in dirs + files:
                    os.lchown(os.path.join(root, name), pg.pw_uid, pg.pw_gid)

    def _initdb(self) -> None:
        argv = [
            _pg_bin("initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--encoding=UTF8",
            "--no-locale",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ]
        result = subprocess.run(_as_cluster_user(argv), capture_output=True, text=True)
        if result.returncode != 0:
            raise PostgresError(f"initdb failed: {result.stdout}\n{result.stderr}")
        # The socket is trusted (only reachable through the state dir); TCP needs a
        # password, and only on 127.0.0.1. No replication, no other hosts.
        (self.data_dir / "pg_hba.conf").write_text(
            "# Written by devstack. TYPE DATABASE USER ADDRESS METHOD\n"
            "local all all trust\n"
            "host  all all 127.0.0.1/32 scram-sha-256\n"
        )
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# devstack settings (rewritten at every start)\n"
                "include_if_exists = 'devstack.conf'\n"
            )

    def _write_config(self) -> None:
        # Rewritten on each start so that a changed port or socket dir takes effect.
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": "200",
            "shared_buffers": "'256MB'",
            "password_encryption": "'scram-sha-256'",
            "log_destination": "'stderr'",
            "log_min_duration_statement": "'2s'",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
            # Never patient data in the server log: no bind parameters, no DETAIL lines
            # (a unique violation's DETAIL quotes the NHS number), no failing statements.
            "log_parameter_max_length": "0",
            "log_parameter_max_length_on_error": "0",
            "log_error_verbosity": "'terse'",
            "log_min_error_statement": "'panic'",
            "timezone": "'UTC'",
        }
        path = self.data_dir / "devstack.conf"
        path.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        if _running_as_root():
            pg = pwd.getpwnam(PG_SYSTEM_USER)
            os.chown(path, pg.pw_uid, pg.pw_gid)

    # ----- databases ----------------------------------------------------------------
    def superuser_url(self, db_name: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{db_name}?host={self.socket_dir}&port={self.port}"

    def _tcp_url(self, user: str, password: str, db_name: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{db_name}"

    def _password(self, role: str) -> str:
        """The role's password, generated once and kept in <state>/secrets (mode 600)."""
        secrets_dir = self.config.secrets_dir
        secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = secrets_dir / f"pg-{role}.password"
        if not path.exists():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process wrote it first; use theirs
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(32))
        return path.read_text().strip()

    def provision_service(self, db_name: str) -> ServiceDatabase:
        """Idempotently create <db>_owner, <db>_app and database <db> with the grants."""
        _check_identifier(db_name)
        owner, app = f"{db_name}_owner", f"{db_name}_app"
        owner_pw, app_pw = self._password(owner), self._password(app)
        run_sync(self._provision_async(db_name, owner, owner_pw, app, app_pw))
        return ServiceDatabase(
            name=db_name,
            owner_user=owner,
            app_user=app,
            owner_url=self._tcp_url(owner, owner_pw, db_name),
            app_url=self._tcp_url(app, app_pw, db_name),
            superuser_url=self.superuser_url(db_name),
        )

    def reset_database(self, db_name: str) -> ServiceDatabase:
        """Drop the database (disconnecting its sessions) and recreate it empty, same roles."""
        _check_identifier(db_name)
        run_sync(self._drop_async(db_name))
        return self.provision_service(db_name)

    async def _drop_async(self, db_name: str) -> None:
        conn = await self._superuser_connect()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def _provision_async(
        self, db: str, owner: str, owner_pw: str, app: str, app_pw: str
    ) -> None:
        conn = await self._superuser_connect()
        try:
            # Two provisioners racing (run and a test) would collide on CREATE ROLE; a
            # cluster-wide advisory lock serialises them.
            await conn.execute("SELECT pg_advisory_lock(7242019)")
            for role, password in ((owner, owner_pw), (app, app_pw)):
                exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
                verb = "ALTER" if exists else "CREATE"
                # Passwords are [A-Za-z0-9_-] (token_urlsafe), so quoting is safe.
                await conn.execute(
                    f'{verb} ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                    f"NOREPLICATION NOBYPASSRLS PASSWORD '{password}'"
                )
            if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", db):
                await conn.execute(f'ALTER DATABASE "{db}" OWNER TO "{owner}"')
            else:
                await conn.execute(
                    f'CREATE DATABASE "{db}" OWNER "{owner}" ENCODING \'UTF8\' TEMPLATE template0'
                )
            await conn.execute(f'REVOKE ALL ON DATABASE "{db}" FROM PUBLIC')
            await conn.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{db}" TO "{app}"')
            await conn.execute("SELECT pg_advisory_unlock(7242019)")
        finally:
            await conn.close()
        conn = await self._superuser_connect(db)
        try:
            # Tables and sequences the owner creates (i.e. migrations) become usable by
            # the app role; the app role can never create or alter schema objects.
            await conn.execute(f'GRANT USAGE ON SCHEMA public TO "{app}"')
            await conn.execute(
                f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" IN SCHEMA public '
                f'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "{app}"'
            )
            await conn.execute(
                f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" IN SCHEMA public '
                f'GRANT USAGE, SELECT ON SEQUENCES TO "{app}"'
            )
        finally:
            await conn.close()


def _check_identifier(name: str) -> None:
    # Names are interpolated into SQL as quoted identifiers; keep them boring.
    if (
        not name
        or not all(c.islower() or c.isdigit() or c == "_" for c in name)
        or name[0].isdigit()
    ):
        raise PostgresError(f"database name {name!r} must be lower-case letters, digits and _")


def _traversable_by(path: Path, user: str) -> Path | None:
    """The first directory on the way to `path` that `user` cannot traverse, or None."""
    entry = pwd.getpwnam(user)
    for parent in reversed(path.resolve().parents):
        try:
            mode = parent.stat()
        except FileNotFoundError:
            return None  # will be created by us, with default permissions
        if mode.st_uid == entry.pw_uid:
            allowed = bool(mode.st_mode & stat.S_IXUSR)
        elif mode.st_gid == entry.pw_gid:
            allowed = bool(mode.st_mode & stat.S_IXGRP)
        else:
            allowed = bool(mode.st_mode & stat.S_IXOTH)
        if not allowed:
            return parent
    return None


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
