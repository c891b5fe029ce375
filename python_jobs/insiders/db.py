"""The only module that opens database connections: resolving the target, connecting, COPY helpers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from .embedded import EmbeddedServer
from .errors import InsidersError
from .settings import Paths, Target, configured_dsn

log = logging.getLogger(__name__)


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
        conn = psycopg.connect(target.url, autocommit=autocommit, application_name="insiders")
    except psycopg.OperationalError as exc:
        raise InsidersError(f"cannot connect to {target.safe_url}: {str(exc).strip()}") from exc
    with conn:
        yield conn
