"""`insiders db roles`: read-only roles for analysts and the BI tool, on the marts schema only.

The grants hold whoever rebuilds the marts and however: `alter default privileges` gives the roles select on every
table and view the pipeline's user creates in the marts schema, so a plain `dbt build` run by hand keeps them.
"""

from __future__ import annotations

import logging
import os

import psycopg
from psycopg import sql

from . import db
from .errors import InsidersError
from .settings import SCHEMA_ROLES, Target

log = logging.getLogger(__name__)

# role name -> environment variable holding its password
READER_ROLES = {"insiders_analyst": "INSIDERS_ANALYST_PASSWORD", "insiders_bi": "INSIDERS_BI_PASSWORD"}
# the short names `insiders db url --role` takes
ROLE_NAMES = {"analyst": "insiders_analyst", "bi": "insiders_bi"}
ROLE_ATTRIBUTES = "login nosuperuser nocreatedb nocreaterole noreplication nobypassrls noinherit"


def existing_reader_roles(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute("select rolname from pg_roles where rolname = any(%s) order by rolname",
                        (list(READER_ROLES),)).fetchall()
    return [row[0] for row in rows]


def role_target(target: Target, short_name: str, *, need_password: bool) -> Target:
    """The target logged in as a read-only role (`insiders db url --role analyst`), its password from the
    environment variable `insiders db roles` read it from."""
    role = ROLE_NAMES[short_name]
    variable = READER_ROLES[role]
    password = os.environ.get(variable, "")
    if need_password and not password:
        raise InsidersError(f"set {variable} to the password of {role} (the one `insiders db roles` was given) "
                            "to print it")
    with db.connect(target) as conn:
        if role not in existing_reader_roles(conn):
            raise InsidersError(f"role {role} does not exist on {target.safe_url}: create it with "
                                "`insiders db roles`")
    return target.for_role(role, password)


def _scram_verifier(conn: psycopg.Connection, role: str, password: str) -> str:
    """The password as PostgreSQL stores it (a SCRAM-SHA-256 verifier), computed here: the clear text never
    travels to the server, nor lands in its statement log or pg_stat_activity."""
    return conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()


def create_roles(target: Target) -> list[str]:
    """Create (or update the password of) each reader role: select on the marts, now and for every table built
    there later; nothing else, not even temporary tables."""
    missing = [env for env in READER_ROLES.values() if not os.environ.get(env)]
    if missing:
        raise InsidersError(f"set {' and '.join(missing)} to the passwords of the read-only roles")
    readable_schema = target.schema("marts")
    with db.connect(target, autocommit=True) as conn:
        # the user the pipeline and dbt run as: the owner of every table they create in the marts
        builder = conn.execute("select current_user").fetchone()[0]
        database = conn.execute("select current_database()").fetchone()[0]
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(readable_schema)))
        # PUBLIC holds TEMPORARY on every database by default, and a role cannot be denied what PUBLIC has: take
        # it from PUBLIC, and give it back by name to the user dbt runs as (its incremental models use temp tables)
        conn.execute(sql.SQL("revoke temporary on database {} from public").format(sql.Identifier(database)))
        conn.execute(sql.SQL("grant temporary on database {} to {}").format(sql.Identifier(database),
                                                                           sql.Identifier(builder)))
        for role, env in READER_ROLES.items():
            exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
            verb = "alter" if exists else "create"
            conn.execute(sql.SQL(verb + " role {} with " + ROLE_ATTRIBUTES + " password {}").format(
                sql.Identifier(role), sql.Literal(_scram_verifier(conn, role, os.environ[env]))))
            names = {"database": sql.Identifier(database), "schema": sql.Identifier(readable_schema),
                     "role": sql.Identifier(role), "builder": sql.Identifier(builder)}
            for statement in (
                "grant connect on database {database} to {role}",
                "revoke temporary on database {database} from {role}",
                "grant usage on schema {schema} to {role}",
                "grant select on all tables in schema {schema} to {role}",
                "alter default privileges for role {builder} in schema {schema} grant select on tables to {role}",
            ):
                conn.execute(sql.SQL(statement).format(**names))
            _warn_about_other_privileges(conn, target, role)
            log.info("%s role %s: select on %s.* only", "updated" if exists else "created", role, readable_schema)
    print("read-only roles ready: " + ", ".join(READER_ROLES) + f" (select on schema {readable_schema}, now and "
          f"on every table built there by {builder}; no temporary tables)")
    return list(READER_ROLES)


def _warn_about_other_privileges(conn: psycopg.Connection, target: Target, role: str) -> None:
    """Privileges this command does not give but the server may (PUBLIC's create on schema public before
    PostgreSQL 15, a grant made by hand): said, not silently kept."""
    pipeline = [target.schema(name) for name in SCHEMA_ROLES if name != "marts"]
    rows = conn.execute(
        "select nspname, has_schema_privilege(%(role)s, oid, 'create'), has_schema_privilege(%(role)s, oid, 'usage')"
        " from pg_namespace where nspname not like 'pg\\_%%' and nspname <> 'information_schema'",
        {"role": role}).fetchall()
    writable = [name for name, create, _ in rows if create]
    readable = [name for name, _, usage in rows if usage and name in pipeline]
    if writable or readable:
        log.warning("%s can also %s: revoke it by hand", role, " and ".join(
            ([f"create objects in {', '.join(writable)}"] if writable else [])
            + ([f"use {', '.join(readable)}"] if readable else [])))
