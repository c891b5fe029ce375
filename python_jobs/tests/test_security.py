"""Secrets and privileges: masked URLs, INSIDERS_DSN's parameters reaching psycopg and dbt, read-only roles that
read the marts and nothing else whatever builds them, passwords sent hashed, and no secret in the tracked tree."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import replace

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from insiders import db
from insiders.dbt_runner import dbt_environment, run_tool, tool_executable
from insiders.embedded import EmbeddedServer
from insiders.errors import InsidersError
from insiders.roles import create_roles, role_target
from insiders.settings import SCHEMA_ROLES, Paths, Target

from .conftest import PROJECT_DIR, server_state_dir

# a password that a URL-building shortcut would break or leak in pieces
AWKWARD_PASSWORD = "p@ss:w/rd%41?#&x y"
ROLE_PASSWORDS = {"INSIDERS_ANALYST_PASSWORD": "analyst-Pw@1:/%", "INSIDERS_BI_PASSWORD": "bi-Pw@2:/%"}


def insiders(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "insiders.cli", *args], env=env, capture_output=True, text=True,
                          check=False)


def cli_env(dsn: str, paths: Paths, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PG", "INSIDERS_"))}
    return {**env, "INSIDERS_DSN": dsn, "INSIDERS_STATE_DIR": str(paths.state_dir), **extra}


def with_params(target: Target, **params: str) -> str:
    """The target's server URL with libpq parameters added, as a user would write INSIDERS_DSN."""
    return replace(target, params=tuple(params.items())).server_url


# -- URLs and masking -------------------------------------------------------------------------------------------

def test_a_password_with_url_characters_connects_and_is_masked_whole(target, test_paths):
    with psycopg.connect(target.url, autocommit=True) as conn:
        conn.execute("drop role if exists awkward_login")
        conn.execute(f"create role awkward_login login password '{AWKWARD_PASSWORD}'")
        conn.execute(f'grant connect on database "{target.dbname}" to awkward_login')
    awkward = replace(target, user="awkward_login", password=AWKWARD_PASSWORD)
    with psycopg.connect(awkward.server_url) as conn:  # the URL carries the password whole
        assert conn.execute("select current_user").fetchone()[0] == "awkward_login"
    env = cli_env(awkward.server_url, test_paths)
    shown = insiders(env, "db", "url")
    assert shown.returncode == 0, shown.stderr
    masked = shown.stdout.strip()
    assert conninfo_to_dict(masked)["password"] == "***"
    for piece in ("p@ss", "w/rd", "%41", "rd%", "x y", "x%20y", "p%40ss"):
        assert piece not in masked, piece
    assert conninfo_to_dict(insiders(env, "db", "url", "--show-password").stdout.strip())["password"] == \
        AWKWARD_PASSWORD
    # the logs name the server by its masked URL too
    unreachable = insiders(cli_env(replace(awkward, port=1).server_url, test_paths), "load", "/nonexistent.csv")
    assert unreachable.returncode == 1 and "awkward_login:***@" in unreachable.stderr
    assert "p@ss" not in unreachable.stderr and "p%40ss" not in unreachable.stderr


def test_secret_parameters_besides_the_password_are_masked():
    target = Target("db.example", 5432, "me", "pw", "d", embedded=False, params=(("sslpassword", "key-pass"),))
    assert conninfo_to_dict(target.safe_url)["sslpassword"] == "***"
    assert "key-pass" not in target.safe_url


# -- INSIDERS_DSN reaches psycopg and dbt -------------------------------------------------------------------------

@pytest.mark.parametrize("dsn", [
    "postgresql://me:secret@db.example:6543/analytics?sslmode=verify-ca&sslrootcert=/etc/passwd"
    "&connect_timeout=7&keepalives_idle=30&application_name=nightly&target_session_attrs=read-write"
    "&channel_binding=prefer&gssencmode=disable&options=-c%20statement_timeout%3D5min%20-c%20work_mem%3D1GB",
    "host=/var/run/postgresql port=5433 user=me dbname=analytics sslmode=disable client_encoding=UTF8",
    "host=h1,h2 port=5432 user=me dbname=analytics target_session_attrs=primary",
])
def test_every_parameter_of_the_dsn_reaches_psycopg_as_given(dsn, monkeypatch):
    for name in [name for name in os.environ if name.startswith("PG")]:
        monkeypatch.delenv(name)
    target = Target.from_dsn(dsn)
    given, used = conninfo_to_dict(dsn), conninfo_to_dict(target.url)
    their_options = given.pop("options", "")
    options = used.pop("options")
    assert used == given  # host, port, user, password, dbname and every other parameter, as written
    # the DSN's options first, the pipeline's after them (for one setting, the last wins)
    assert options.startswith(their_options) and options.endswith(f"-c insiders.target={target.name}")
    assert "-c search_path=ml,marts," in options
    assert conninfo_to_dict(target.server_url).get("options", "") == their_options


def test_the_pipelines_own_url_given_back_as_the_dsn_is_not_doubled(server_target):
    again = Target.from_dsn(server_target.url)
    assert again.param("options") is None
    assert conninfo_to_dict(again.url)["options"] == conninfo_to_dict(server_target.url)["options"]


def test_a_unix_socket_host_reaches_psycopg_and_dbt(own_state_dir, test_paths):
    with server_state_dir() as sockets:  # short: a socket's path is limited to about 100 bytes
        server = EmbeddedServer(Paths(project_dir=PROJECT_DIR, state_dir=own_state_dir), socket_dir=sockets)
        try:
            over_tcp = server.start()
            dsn = f"host={sockets} port={over_tcp.port} user={over_tcp.user} dbname={over_tcp.dbname}"
            target = Target.from_dsn(f"{dsn} password={over_tcp.password}")
            assert conninfo_to_dict(target.url)["host"] == str(sockets)
            with db.connect(target) as conn:
                assert conn.info.host == str(sockets)
                assert conn.execute("select inet_server_addr()").fetchone()[0] is None  # not over TCP
            works = run_tool(test_paths, target, "dbt", ["debug", "--connection"], quiet=True)
            assert works.returncode == 0, works.stdout[-2000:]
        finally:
            server.stop()


def test_libpq_defaults_fill_what_the_dsn_leaves_out(monkeypatch):
    for name, value in {"PGHOST": "/tmp/sockets", "PGPORT": "6000", "PGUSER": "ann", "PGPASSWORD": "pw"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PGDATABASE", raising=False)
    target = Target.from_dsn("sslmode=disable")
    assert (target.host, target.port, target.user, target.dbname) == ("/tmp/sockets", 6000, "ann", "ann")
    assert conninfo_to_dict(target.url)["host"] == "/tmp/sockets"


def test_the_profile_takes_every_parameter_dbt_postgres_has_and_libpq_variables_carry_the_rest(monkeypatch):
    monkeypatch.delenv("PGOPTIONS", raising=False)
    target = Target.from_dsn("postgresql://me:pw@db.example:6543/analytics?sslmode=verify-full"
                             "&sslrootcert=/etc/passwd&sslcert=/etc/passwd&sslkey=/etc/passwd"
                             "&connect_timeout=7&keepalives_idle=30&application_name=nightly"
                             "&target_session_attrs=read-write&options=-c%20work_mem%3D1GB")
    env = target.dbt_env()
    assert {key: env[key] for key in env if key.startswith("INSIDERS_PG")} == {
        "INSIDERS_PGHOST": "db.example", "INSIDERS_PGPORT": "6543", "INSIDERS_PGUSER": "me",
        "INSIDERS_PGPASSWORD": "pw", "INSIDERS_PGDATABASE": "analytics", "INSIDERS_PGSSLMODE": "verify-full",
        "INSIDERS_PGSSLROOTCERT": "/etc/passwd", "INSIDERS_PGSSLCERT": "/etc/passwd",
        "INSIDERS_PGSSLKEY": "/etc/passwd", "INSIDERS_PGCONNECT_TIMEOUT": "7",
        "INSIDERS_PGKEEPALIVES_IDLE": "30", "INSIDERS_PGAPPLICATION_NAME": "nightly"}
    assert env["PGTARGETSESSIONATTRS"] == "read-write" and env["PGOPTIONS"] == "-c work_mem=1GB"
    profile = (PROJECT_DIR / "profiles.yml.example").read_text()
    for key in env:
        if key.startswith("INSIDERS_PG"):
            assert f"env_var('{key}'" in profile, key
    # every field of dbt-postgres's credentials that is a connection parameter has its variable
    from dbt.adapters.postgres.connections import PostgresCredentials

    fields = set(PostgresCredentials.__dataclass_fields__) - {"database", "schema", "search_path", "role",
                                                              "autocommit", "retries", "_ALIASES"}
    assert {f"INSIDERS_PG{'DATABASE' if name == 'dbname' else name.upper()}" for name in fields} <= set(env)


@pytest.mark.parametrize(("dsn", "named"), [
    ("host=db.example keepalives=1", "keepalives"),
    ("host=db.example tcp_user_timeout=1000 sslmode=disable", "tcp_user_timeout"),
    ("service=warehouse", "service"),
    ("host=db.example connect_timeout=soon", "connect_timeout=soon"),
    ("postgresql://me@h1:5432,h2:5433/analytics", "port=5432,5433"),
])
def test_a_parameter_that_cannot_reach_dbt_is_refused_naming_it(dsn, named):
    with pytest.raises(InsidersError, match=re.escape(named)):
        Target.from_dsn(dsn)


def test_sslmode_reaches_psycopg_and_dbt(target, test_paths, monkeypatch):
    """The embedded server has no SSL: sslmode=require must fail in both, sslmode=disable connect in both."""
    monkeypatch.delenv("PGSSLMODE", raising=False)
    required = Target.from_dsn(with_params(target, sslmode="require"))
    with pytest.raises(InsidersError, match="SSL"), db.connect(required):
        pass
    refused = run_tool(test_paths, required, "dbt", ["debug", "--connection"], quiet=True)
    assert refused.returncode != 0 and "SSL" in refused.stdout, refused.stdout[-2000:]

    disabled = Target.from_dsn(with_params(target, sslmode="disable", application_name="sslprobe"))
    with db.connect(disabled) as conn:
        assert conn.execute("select current_setting('application_name')").fetchone()[0] == "sslprobe"
    works = run_tool(test_paths, disabled, "dbt", ["debug", "--connection"], quiet=True)
    assert works.returncode == 0, works.stdout[-2000:]


def test_a_root_certificate_that_does_not_exist_is_one_clear_line(target, test_paths, tmp_path):
    missing = tmp_path / "no-such-root.crt"
    env = cli_env(with_params(target, sslmode="verify-full", sslrootcert=str(missing)), test_paths)
    for command in (("db", "status"), ("dbt", "debug")):
        result = insiders(env, *command)
        assert result.returncode == 1
        said = f"error: INSIDERS_DSN: sslrootcert={missing} does not exist (sslmode=verify-full)"
        assert result.stderr.strip() == said
        assert "Traceback" not in result.stderr


def test_db_status_describes_the_dsns_server(target, test_paths):
    result = insiders(cli_env(target.server_url, test_paths), "db", "status")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["target"] == "INSIDERS_DSN" and status["reachable"] is True
    assert status["database"] == target.dbname and status["user"] == target.user
    assert status["server_version"].startswith("18") and "data_directory" not in status
    assert "***" in status["url"] and target.password not in result.stdout
    gone = insiders(cli_env(replace(target, port=1).server_url, test_paths), "db", "status")
    assert gone.returncode == 3 and json.loads(gone.stdout)["reachable"] is False
    assert target.password not in gone.stdout + gone.stderr


# -- read-only roles ----------------------------------------------------------------------------------------------

@pytest.fixture
def reader_roles(demo_mart, monkeypatch) -> Target:
    for name, value in ROLE_PASSWORDS.items():
        monkeypatch.setenv(name, value)
    create_roles(demo_mart)
    return demo_mart


def _oids(target: Target, tables: list[str]) -> list[int]:
    with psycopg.connect(target.url) as conn:
        return [conn.execute("select %s::regclass::oid", (f"marts.{table}",)).fetchone()[0] for table in tables]


def test_grants_survive_a_plain_dbt_build_run_by_hand(reader_roles, test_paths):
    rebuilt = ["fct_customer_daily_sales", "rpt_data_quality"]
    before = _oids(reader_roles, rebuilt)
    # dbt as a person runs it: the profile and its connection variables, nothing about roles
    env = {**os.environ, **dbt_environment(test_paths, reader_roles)}
    env.pop("INSIDERS_READER_ROLES", None)
    build = subprocess.run([tool_executable("dbt"), "build", "--select", *rebuilt], cwd=PROJECT_DIR, env=env,
                           capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stdout[-3000:]
    assert _oids(reader_roles, rebuilt) != before  # the tables are new ones
    for short_name in ("analyst", "bi"):
        reader = role_target(reader_roles, short_name, need_password=True)
        with psycopg.connect(reader.server_url) as conn:
            for table in rebuilt:
                conn.execute(f"select * from marts.{table} limit 1")


def test_reader_roles_read_the_marts_and_nothing_else(reader_roles):
    with psycopg.connect(reader_roles.url) as conn:
        schemas = {row[0]: row[1] for row in conn.execute(
            "select n.nspname, min(c.relname) from pg_namespace as n"
            " left join pg_class as c on c.relnamespace = n.oid and c.relkind in ('r', 'v', 'p')"
            " where n.nspname = any(%s) group by n.nspname",
            ([reader_roles.schema(role) for role in SCHEMA_ROLES],)).fetchall()}
        marts = [row[0] for row in conn.execute("select tablename from pg_tables where schemaname = 'marts'")]
    assert schemas.get("raw") and marts  # there is something to be refused, and something to read
    reader = role_target(reader_roles, "bi", need_password=True)
    with psycopg.connect(reader.server_url, autocommit=True) as conn:
        for table in marts:
            conn.execute(f"select * from marts.{table} limit 1")
        forbidden = [f"select * from {schema}.{table} limit 1" for schema, table in schemas.items()
                     if schema != "marts" and table]
        forbidden += [f"insert into marts.{marts[0]} default values", f"delete from marts.{marts[0]}",
                      f"truncate marts.{marts[0]}", "create table marts.scratch (a int)",
                      "create table public.scratch (a int)", "create schema scratch",
                      "create temporary table scratch (a int)", "create temporary view scratch as select 1"]
        for statement in forbidden:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        for schema in schemas:
            if schema != "marts":
                assert not conn.execute("select has_schema_privilege(%s, 'usage')", (schema,)).fetchone()[0]
    with psycopg.connect(reader_roles.url) as conn:  # the pipeline's user keeps its temporary tables (dbt's)
        conn.execute("create temporary table scratch (a int)")


def test_role_passwords_are_sent_hashed(demo_mart, test_paths, monkeypatch):
    for name, value in ROLE_PASSWORDS.items():
        monkeypatch.setenv(name, value)
    with psycopg.connect(demo_mart.url, autocommit=True) as conn:
        conn.execute(f'alter database "{demo_mart.dbname}" set log_statement = \'all\'')
    log = test_paths.state_dir / "postgres.log"
    start = log.stat().st_size
    create_roles(demo_mart)
    with psycopg.connect(demo_mart.url, autocommit=True) as conn:
        conn.execute(f'alter database "{demo_mart.dbname}" reset log_statement')
        stored = dict(conn.execute("select rolname, rolpassword from pg_authid"
                                   " where rolname in ('insiders_analyst', 'insiders_bi')").fetchall())
    with log.open("rb") as handle:
        handle.seek(start)
        logged = handle.read().decode(errors="replace")
    assert re.search(r"role \"insiders_analyst\" with .* password '", logged)  # the statement was logged
    for password in ROLE_PASSWORDS.values():
        assert password not in logged
    assert all(value.startswith("SCRAM-SHA-256$") for value in stored.values()) and len(stored) == 2


def test_db_url_for_a_role(reader_roles, test_paths):
    env = cli_env(reader_roles.server_url, test_paths, **ROLE_PASSWORDS)
    masked = insiders(env, "db", "url", "--role", "bi")
    assert masked.returncode == 0 and masked.stdout.startswith("postgresql://insiders_bi:***@")
    url = insiders(env, "db", "url", "--role", "analyst", "--show-password").stdout.strip()
    with psycopg.connect(url) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "insiders_analyst"
    no_password = insiders({**env, "INSIDERS_BI_PASSWORD": ""}, "db", "url", "--role", "bi", "--show-password")
    assert no_password.returncode == 1 and "INSIDERS_BI_PASSWORD" in no_password.stderr


# -- the embedded server's permissions ----------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the server changes owners only when run as root")


@needs_root
def test_only_the_state_directory_changes_hands(own_state_dir):
    parent = own_state_dir
    parent.chmod(0o711)  # others may pass through, not list
    server = EmbeddedServer(Paths(project_dir=PROJECT_DIR, state_dir=parent / "state"))
    try:
        server.start()
        assert stat.S_IMODE(parent.stat().st_mode) == 0o711 and parent.stat().st_uid == 0
        assert (parent / "state").stat().st_uid != 0  # handed over to the server's user
    finally:
        server.stop()


@needs_root
def test_a_folder_the_server_user_cannot_pass_is_named_not_widened(own_state_dir):
    blocked = own_state_dir / "private"
    blocked.mkdir(mode=0o700)
    server = EmbeddedServer(Paths(project_dir=PROJECT_DIR, state_dir=blocked / "state"))
    with pytest.raises(InsidersError, match=re.escape(f"{blocked} (mode drwx------)")):
        server.start()
    assert stat.S_IMODE(blocked.stat().st_mode) == 0o700
    assert not (blocked / "state" / "pgdata" / "PG_VERSION").exists()


# -- no secret in the tracked tree --------------------------------------------------------------------------------

# a URL's password, unless it is a placeholder a reader fills in
URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@'\"]+:(?P<password>[^\s@'\"/]+)@")
PLACEHOLDERS = re.compile(r"^(\*+|\.\.\.|…|password|pass|pw|secret|x+|<[^>]*>|\{[^}]*\}|\$\{?\w+\}?|%\(\w+\)s)$",
                          re.IGNORECASE)
SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "OpenAI-style key": re.compile(r"\bsk-[A-Za-z0-9_-]{32,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    "SCRAM verifier": re.compile(r"SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]{8,}\$"),
}


def find_secrets(text: str) -> list[str]:
    found = [name for name, pattern in SECRET_PATTERNS.items() if pattern.search(text)]
    found += [f"password in URL {match.group(0)[:40]}…" for match in URL_PASSWORD.finditer(text)
              if not PLACEHOLDERS.match(match.group("password"))]
    return found


def test_the_secret_scanner_finds_what_it_looks_for():
    # assembled here, so that the tree itself holds none of them
    planted = {
        "private key": "-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n",
        "AWS access key": "aws_access_key_id = AKIA" + "Z7QH4XK2M9PLW3RT",
        "GitHub token": "token: ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
        "password in URL": "INSIDERS_DSN=postgresql://etl:" + "Tr0ub4dor@db.internal/analytics",
    }
    for name, text in planted.items():
        assert any(hit.startswith(name) for hit in find_secrets(text)), name
    for clean in ("postgresql://owner:password@host:port/database", "postgresql://me@db.internal:5432/x",
                  "postgresql://insiders:***@127.0.0.1:54329/insiders", "https://example.com/a:b@c"):
        assert find_secrets(clean) == [], clean


def test_no_secret_in_the_tracked_tree():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_DIR, capture_output=True, check=True
                           ).stdout.decode().split("\0")
    hits = []
    for name in filter(None, files):
        path = PROJECT_DIR / name
        if not path.is_file():
            continue
        content = path.read_bytes()
        if b"\0" in content[:8192]:
            continue  # binary
        hits += [f"{name}: {hit}" for hit in find_secrets(content.decode("utf-8", errors="replace"))]
    assert not hits, "secrets in tracked files:\n" + "\n".join(hits)


def test_the_scan_covers_what_git_tracks():
    assert len(subprocess.run(["git", "ls-files"], cwd=PROJECT_DIR, capture_output=True, text=True,
                              check=True).stdout.splitlines()) > 50
