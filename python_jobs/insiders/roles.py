"""`insiders db roles`: read-only roles for analysts and the BI tool, on the marts schema only."""

from __future__ import annotations

import logging
import os

import psycopg
from psycopg import sql

from . import db
from .errors import InsidersError
from .settings import Target

log = logging.getLogger(__name__)

# role name -> environment variable holding its password
READER_ROLES = {"insiders_analyst": "INSIDERS_ANALYST_PASSWORD", "insiders_bi": "INSIDERS_BI_PASSWORD"}


def existing_reader_roles(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute("select rolname from pg_roles where rolname = any(%s) order by rolname",
                        (list(READER_ROLES),)).fetchall()
    return [row[0] for row in rows]


def create_roles(target: Target) -> list[str]:
    """Create (or update the password of) each reader role and grant it select on the marts, nothing else."""
    missing = [env for env in READER_ROLES.values() if not os.environ.get(env)]
    if missing:
        raise InsidersError(f"set {' and '.join(missing)} to the passwords of the read-only roles")
    readable_schema = target.schema("marts")
    with db.connect(target, autocommit=True) as conn:
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(readable_schema)))
        for role, env in READER_ROLES.items():
            password = os.environ[env]
            exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
            verb = "alter" if exists else "create"
            conn.execute(sql.SQL(verb + " role {} with login password {} nosuperuser nocreatedb nocreaterole")
                         .format(sql.Identifier(role), sql.Literal(password)))
            conn.execute(sql.SQL("grant connect on database {} to {}").format(
                sql.Identifier(target.dbname), sql.Identifier(role)))
            conn.execute(sql.SQL("grant usage on schema {} to {}").format(
                sql.Identifier(readable_schema), sql.Identifier(role)))
            conn.execute(sql.SQL("grant select on all tables in schema {} to {}").format(
                sql.Identifier(readable_schema), sql.Identifier(role)))
            log.info("%s role %s: select on %s.* only", "updated" if exists else "created", role, readable_schema)
    print("read-only roles ready: " + ", ".join(READER_ROLES) + f" (select on schema {readable_schema}); "
          "dbt re-grants them on every build")
    return list(READER_ROLES)
