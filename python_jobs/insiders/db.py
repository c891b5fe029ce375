"""The only module that opens database connections: resolving the target, connecting, COPY helpers."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

import psycopg
from psycopg import sql

from .embedded import EmbeddedServer
from .errors import InsidersError
from .settings import PRODUCTION_TARGET, TARGET_SETTING, Paths, Target, configured_dsn, schema_name

log = logging.getLogger(__name__)

DDL_LOCK = zlib.crc32(b"insiders ddl")


def resolve_target(paths: Paths | None = None, start: bool = True) -> Target:
    """INSIDERS_DSN if set; otherwise the embedded server, started when `start` is true."""
    dsn = configured_dsn()
    if dsn:
        return Target.from_dsn(dsn)
    server = EmbeddedServer(paths or Paths.resolve())
    return server.start() if start else server.target()


@contextmanager
def connect(target: Target, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    try:
        # a fallback: an application_name given in INSIDERS_DSN is the user's, and wins
        conn = psycopg.connect(target.url, autocommit=autocommit, fallback_application_name="insiders")
    except psycopg.OperationalError as exc:
        raise InsidersError(f"cannot connect to {target.safe_url}: {' '.join(str(exc).split())}") from exc
    with conn:
        yield conn


def describe_server(target: Target) -> dict[str, object]:
    """What `insiders db status` says of a server of one's own (INSIDERS_DSN): reachable or why not, and the
    server's version, the database and the user the pipeline is connected as."""
    described: dict[str, object] = {"url": target.safe_url}
    try:
        with connect(target, autocommit=True) as conn:
            row = conn.execute("select current_setting('server_version'), current_database(), current_user,"
                               " inet_server_addr()::text, ssl.ssl from pg_stat_ssl as ssl"
                               " where ssl.pid = pg_backend_pid()").fetchone()
    except InsidersError as exc:
        return {**described, "reachable": False, "error": str(exc)}
    version, database, user, address, ssl = row
    return {**described, "reachable": True, "server_version": version, "database": database, "user": user,
            "server_address": address or "unix socket", "ssl": bool(ssl)}


def schema_of(conn: psycopg.Connection, role: str) -> str:
    """The schema of `role` (raw, ml, …) for the target the connection was opened for (see Target.url)."""
    target_name = conn.execute("select current_setting(%s, true)", (TARGET_SETTING,)).fetchone()[0]
    return schema_name(role, target_name or PRODUCTION_TARGET)


def create_tables(conn: psycopg.Connection, role: str) -> None:
    """Create `role`'s schema and run its DDL (sql/<role>_schema.sql, idempotent) inside it: the DDL names its
    tables without a schema, so one file serves every target."""
    schema = schema_of(conn, role)
    ddl = resources.files("insiders").joinpath(f"sql/{role}_schema.sql").read_text()
    # `create … if not exists` is not safe against a concurrent creator (two first loads both see no schema and
    # one fails on the catalog's unique index): creators take turns
    if conn.autocommit:
        conn.execute("select pg_advisory_lock(%s)", (DDL_LOCK,))
    else:
        conn.execute("select pg_advisory_xact_lock(%s)", (DDL_LOCK,))
    try:
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("set search_path to {}").format(sql.Identifier(schema)))
        try:
            conn.execute(ddl)
        finally:
            # back to the target's search_path (set when the connection opened); a failed transaction's rollback
            # restores it anyway, and a statement there would only hide the error
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
                conn.execute("reset search_path")
    finally:
        if conn.autocommit:
            conn.execute("select pg_advisory_unlock(%s)", (DDL_LOCK,))
