"""One writer at a time: every command that writes to the database (run, load, cluster, backfill, backtest) holds
a PostgreSQL advisory lock for its target while it works. A second command waits, saying which command holds the
lock since when, or with `--no-wait` stops at once.

The lock lives in the database, not in a file, so that it serialises runs from different machines or checkouts
against one server, and it is released by PostgreSQL itself when the holder's session ends, killed or not. A local
Spark warehouse has no server to hold a lock: its runs take turns on a file lock in the warehouse's directory.
"""

from __future__ import annotations

import fcntl
import logging
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from .errors import InsidersError
from .settings import Target

log = logging.getLogger(__name__)

# advisory locks are (int4, int4) pairs: the first names the application, the second the dbt target
LOCK_NAMESPACE = zlib.crc32(b"insiders writer") & 0x7FFFFFFF
APPLICATION_PREFIX = "insiders writer: "


def lock_key(target: Target) -> tuple[int, int]:
    return LOCK_NAMESPACE, zlib.crc32(target.name.encode()) & 0x7FFFFFFF


def _holder(conn: psycopg.Connection, key: tuple[int, int]) -> str:
    row = conn.execute(
        "select activity.application_name, activity.backend_start, activity.client_addr"
        " from pg_locks as locks join pg_stat_activity as activity on activity.pid = locks.pid"
        " where locks.locktype = 'advisory' and locks.granted and locks.database = ("
        "   select oid from pg_database where datname = current_database())"
        " and locks.classid = %s and locks.objid = %s and locks.objsubid = 2",
        key,
    ).fetchone()
    if row is None:
        return "another insiders command"
    application, started, client = row
    who = application.removeprefix(APPLICATION_PREFIX) if application else "another session"
    return f"`{who}` (connected {started:%Y-%m-%d %H:%M:%S %Z}{f' from {client}' if client else ''})"


@contextmanager
def writer_lock(target: Target, command: str, *, wait: bool = True) -> Iterator[None]:
    """Hold the target's writer lock for the duration of `command` (a short description such as "run")."""
    key = lock_key(target)
    application = f"{APPLICATION_PREFIX}insiders {command} (pid {os.getpid()})"[:63]
    try:
        conn = psycopg.connect(target.url, autocommit=True, application_name=application)
    except psycopg.OperationalError as exc:
        raise InsidersError(f"cannot connect to {target.safe_url}: {str(exc).strip()}") from exc
    with conn:
        if not conn.execute("select pg_try_advisory_lock(%s, %s)", key).fetchone()[0]:
            holder = _holder(conn, key)
            if not wait:
                raise InsidersError(f"{holder} is writing to {target.safe_url} (target {target.name}); "
                                    "not waiting (--no-wait)")
            log.warning("waiting for %s to finish writing to %s", holder, target.safe_url)
            conn.execute("select pg_advisory_lock(%s, %s)", key)
            log.info("lock acquired: insiders %s goes on", command)
        try:
            yield
        finally:
            if not conn.closed:
                conn.execute("select pg_advisory_unlock(%s, %s)", key)


@contextmanager
def spark_warehouse_lock(spark_dir: Path, command: str, *, wait: bool = True) -> Iterator[None]:
    """Hold a local Spark warehouse for `command`: its Derby metastore admits one session, so a second run would
    fail inside Spark; it waits here instead (or stops at once with `wait` false), naming the holder. The lock is a
    file lock, released by the kernel when the holder's process ends, killed or not."""
    spark_dir.mkdir(parents=True, exist_ok=True)
    lock_file = spark_dir / "writer.lock"
    with open(lock_file, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another insiders command"
            if not wait:
                raise InsidersError(f"{holder} is using the Spark warehouse {spark_dir}; not waiting (--no-wait)"
                                    ) from None
            log.warning("waiting for %s to finish with the Spark warehouse %s", holder, spark_dir)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"insiders {command} (pid {os.getpid()})")
        handle.flush()
        yield
