"""Where the project lives and which database it talks to, resolved once per command."""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from .errors import InsidersError

DSN_ENV = "INSIDERS_DSN"
PROJECT_DIR_ENV = "INSIDERS_PROJECT_DIR"
STATE_DIR_ENV = "INSIDERS_STATE_DIR"
TARGET_ENV = "INSIDERS_TARGET"

# The dbt target whose schemas carry their plain names (raw, marts, ml, …); every other target (dev, ci, …) gets
# them prefixed with its name (dev_marts, ci_ml, …), in dbt (macros/generate_schema_name.sql, the sources' YAML)
# and in the Python job alike, so that a test or development build never writes into production tables.
PRODUCTION_TARGET = "default"
# Every schema the pipeline reads or writes, in the order unqualified table names are looked up (search_path).
SCHEMA_ROLES = ("ml", "marts", "raw", "control", "intermediate", "staging")
# The session setting that tells code holding only a connection which target it was opened for.
TARGET_SETTING = "insiders.target"

# What a masked secret reads as in a URL; libpq parameters that are secrets besides the password.
MASK = "***"
SECRET_PARAMETERS = frozenset({"password", "sslpassword", "oauth_client_secret", "scram_client_key",
                               "scram_server_key"})
# The connection parameters dbt-postgres's profile has a field for (PostgresCredentials, besides host, port, user,
# password and dbname), with the value it uses when none is given; profiles.yml.example reads each from
# INSIDERS_PG<NAME>. A DSN's other parameters reach dbt's libpq through libpq's own environment variables.
PROFILE_PARAMETERS = {"sslmode": "", "sslcert": "", "sslkey": "", "sslrootcert": "", "connect_timeout": "10",
                      "keepalives_idle": "0", "application_name": "dbt"}
NUMERIC_PROFILE_PARAMETERS = ("connect_timeout", "keepalives_idle")
# Files a DSN names: one that does not exist is refused before any connection (libpq would skip a missing client
# certificate silently, and name a missing root certificate only after the server accepted SSL).
FILE_PARAMETERS = ("sslrootcert", "sslcert", "sslkey", "sslcrl", "sslcrldir")
# A host that can stand in a URL's authority as it is; any other (a socket directory, several hosts, IPv6,
# libpq's default) goes in the query string.
_PLAIN_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-_]*")
# The settings the pipeline puts in `options` itself (Target.url): a DSN's own values for them are replaced.
PIPELINE_SETTINGS = ("search_path", TARGET_SETTING)


@cache
def _libpq_variables() -> dict[str, str]:
    """libpq's environment variable for each connection parameter that has one (sslmode: PGSSLMODE, …)."""
    return {option.keyword.decode(): option.envvar.decode() for option in pq.Conninfo.get_defaults()
            if option.envvar}


def _dbt_libpq_knows(name: str) -> bool:
    """Whether the libpq under dbt (psycopg2's, often older than psycopg's) has the parameter at all."""
    try:
        from psycopg2 import ProgrammingError
        from psycopg2.extensions import parse_dsn
    except ImportError:  # pragma: no cover - dbt-postgres brings psycopg2
        return True
    try:
        parse_dsn(f"{name}=x")
    except ProgrammingError:
        return False
    return True


def _refuse_what_dbt_cannot_take(given: dict[str, str]) -> None:
    """Every parameter reaches psycopg; one with no way into dbt's connections is refused, naming it."""
    refused = []
    for name, value in given.items():
        if name in PROFILE_PARAMETERS:
            if name in NUMERIC_PROFILE_PARAMETERS and not value.isdigit():
                refused.append(f"{name}={value} (dbt's profile takes a whole number of seconds)")
        elif name == "service":
            refused.append("service (dbt passes host, port, user and dbname itself, over the service file's; "
                           "give them in the DSN)")
        elif name not in _libpq_variables():
            refused.append(f"{name} (dbt-postgres's profile has no field for it, and libpq no environment variable)")
        elif not _dbt_libpq_knows(name):
            refused.append(f"{name} (the libpq under dbt, psycopg2's, does not know it)")
    if refused:
        raise InsidersError(f"{DSN_ENV}: cannot pass on to dbt: {'; '.join(refused)}. Remove "
                            f"{'it' if len(refused) == 1 else 'them'} from {DSN_ENV}")


def _check_files(given: dict[str, str]) -> None:
    for name in FILE_PARAMETERS:
        value = given.get(name)
        if value and not (name == "sslrootcert" and value == "system") and not Path(value).expanduser().exists():
            mode = given.get("sslmode", "prefer")
            raise InsidersError(f"{DSN_ENV}: {name}={value} does not exist (sslmode={mode})")


def _split_options(options: str) -> list[str]:
    """libpq's `options` as the server splits it: words separated by white space, a backslash escaping the next
    character."""
    return [re.sub(r"\\(.)", r"\1", word) for word in re.findall(r"(?:\\.|[^\s\\])+", options)]


def _join_options(words: list[str]) -> str:
    return " ".join(re.sub(r"([\s\\])", r"\\\1", word) for word in words)


def _without_pipeline_settings(options: str) -> str:
    """The DSN's `options` without the settings the pipeline sets itself (search_path, insiders.target): a URL the
    pipeline made (Target.url, passed back as INSIDERS_DSN) names them already."""
    words, kept = _split_options(options), []
    index = 0
    while index < len(words):
        word = words[index]
        if word == "-c" and index + 1 < len(words):
            setting, width = words[index + 1], 2
        elif word.startswith(("-c", "--")):
            setting, width = word[2:], 1
        else:
            setting, width = "", 1
        if setting.split("=", 1)[0].replace("-", "_") not in PIPELINE_SETTINGS:
            kept.extend(words[index:index + width])
        index += width
    return _join_options(kept)


def find_project_dir() -> Path:
    """The dbt project root: $INSIDERS_PROJECT_DIR, else the checkout this package was installed from, else cwd."""
    if os.environ.get(PROJECT_DIR_ENV):
        return Path(os.environ[PROJECT_DIR_ENV]).resolve()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "dbt_project.yml").exists():
        return checkout
    for candidate in (Path.cwd(), *Path.cwd().parents):
        if (candidate / "dbt_project.yml").exists():
            return candidate
    return Path.cwd()


@dataclass(frozen=True)
class Paths:
    project_dir: Path
    state_dir: Path

    @property
    def pgdata(self) -> Path:
        return self.state_dir / "pgdata"

    @property
    def embedded_config(self) -> Path:
        return self.state_dir / "embedded.json"

    @property
    def dbt_profiles_dir(self) -> Path:
        return self.state_dir / "dbt"

    @property
    def artifacts_dir(self) -> Path:
        return self.state_dir / "artifacts"

    @classmethod
    def resolve(cls) -> Paths:
        project_dir = find_project_dir()
        state_dir = Path(os.environ.get(STATE_DIR_ENV, project_dir / ".insiders")).resolve()
        return cls(project_dir=project_dir, state_dir=state_dir)


def schema_name(role: str, target_name: str) -> str:
    """The schema that holds `role`'s tables (raw, marts, ml, …) under the dbt target `target_name`."""
    return role if target_name == PRODUCTION_TARGET else f"{target_name}_{role}"


def configured_target_name() -> str:
    """$INSIDERS_TARGET, else the production target; a name that could not prefix a schema is refused."""
    name = os.environ.get(TARGET_ENV) or PRODUCTION_TARGET
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", name):
        raise InsidersError(f"{TARGET_ENV}={name!r}: a dbt target name is lower-case letters, digits and _ "
                            "(it prefixes the schemas)")
    return name


@dataclass(frozen=True)
class Target:
    """Connection parameters of the PostgreSQL database the pipeline writes to, and the dbt target (which names
    the schemas) it writes under.

    host, port, user, password and dbname hold the values libpq would use (the DSN's, else libpq's environment
    variables, else its defaults; host "" is libpq's default Unix socket); `params` holds every other libpq
    parameter of the DSN as given (sslmode, sslrootcert, options, …), passed on unchanged to psycopg and dbt."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    embedded: bool
    name: str = PRODUCTION_TARGET
    params: tuple[tuple[str, str], ...] = ()

    def schema(self, role: str) -> str:
        return schema_name(role, self.name)

    @property
    def search_path(self) -> str:
        return ",".join(self.schema(role) for role in SCHEMA_ROLES)

    def param(self, name: str) -> str | None:
        return dict(self.params).get(name)

    @property
    def url(self) -> str:
        """The URL every connection of the pipeline opens: the Python job names tables without their schema and
        finds them through the target's search_path, so that one piece of SQL serves every target. The DSN's own
        `options` come first, the pipeline's after (for the same setting, the last one given wins)."""
        pipeline = f"-c search_path={self.search_path} -c {TARGET_SETTING}={self.name}"
        options = " ".join(part for part in (self.param("options"), pipeline) if part)
        return self._url(self.password, {**dict(self.params), "options": options})

    @property
    def server_url(self) -> str:
        """The database's URL without the pipeline's session options: what a person or another tool connects to."""
        return self._url(self.password, dict(self.params))

    @property
    def safe_url(self) -> str:
        """The server URL with every secret masked, for logs and for showing."""
        params = {key: MASK if key in SECRET_PARAMETERS else value for key, value in self.params}
        return self._url(MASK if self.password else "", params, masked=True)

    def for_role(self, role: str, password: str) -> Target:
        """The same server, database and connection parameters, logged in as `role` (a read-only role)."""
        return replace(self, user=role, password=password)

    def _url(self, password: str, params: dict[str, str], masked: bool = False) -> str:
        # built from the parsed parts, each quoted on its own: a password holding @ : / % is one quoted field,
        # and masking replaces that field whole (never a search-and-replace in the text)
        secret = MASK if masked else quote(password, safe="")
        userinfo = quote(self.user, safe="") + (f":{secret}" if password else "")
        if _PLAIN_HOST.fullmatch(self.host):
            netloc = f"{self.host}:{self.port}"
        else:
            # a socket directory, several hosts, an IPv6 address or libpq's default host: as query parameters,
            # which take any value
            netloc = ""
            params = {**({"host": self.host} if self.host else {}), "port": str(self.port), **params}
        query = ("?" + urlencode(params, quote_via=quote)) if params else ""
        return f"postgresql://{userinfo}@{netloc}/{quote(self.dbname, safe='')}{query}"

    def dbt_env(self) -> dict[str, str]:
        """Environment variables read by profiles.yml.example (INSIDERS_PG*), and libpq's own variables (PG*) for
        the DSN's parameters that dbt's profile has no field for: both reach dbt's connections."""
        env = {
            "INSIDERS_PGHOST": self.host,
            "INSIDERS_PGPORT": str(self.port),
            "INSIDERS_PGUSER": self.user,
            "INSIDERS_PGPASSWORD": self.password,
            "INSIDERS_PGDATABASE": self.dbname,
            TARGET_ENV: self.name,
        }
        given = dict(self.params)
        for name, default in PROFILE_PARAMETERS.items():
            # what libpq would use when the DSN does not say: its environment variable (dbt passes every profile
            # field explicitly, so libpq would not read that variable itself)
            variable = _libpq_variables().get(name)
            env[f"INSIDERS_PG{name.upper()}"] = given.get(name) or os.environ.get(variable or "", "") or default
        for name, value in given.items():
            if name not in PROFILE_PARAMETERS:
                env[_libpq_variables()[name]] = value
        return env

    @classmethod
    def from_dsn(cls, dsn: str) -> Target:
        """The target of INSIDERS_DSN (a URL or a key=value string). Every parameter reaches psycopg as given; one
        that cannot also reach dbt is refused, naming it, rather than dropped."""
        try:
            given = {key: str(value) for key, value in conninfo_to_dict(dsn).items()}
        except psycopg.ProgrammingError as exc:
            # libpq quotes pieces of the string in its message, and a piece may be the password
            said = re.sub(r'"[^"]*"', '"…"', " ".join(str(exc).split()))
            raise InsidersError(f"{DSN_ENV} is not a PostgreSQL URL or key=value string: {said}") from None
        host = given.pop("host", None) or os.environ.get("PGHOST", "")
        port_text = given.pop("port", None) or os.environ.get("PGPORT") or "5432"
        user = given.pop("user", None) or os.environ.get("PGUSER") or getpass.getuser()
        password = given.pop("password", None) or os.environ.get("PGPASSWORD", "")
        dbname = given.pop("dbname", None) or os.environ.get("PGDATABASE") or user
        if not port_text.isdigit():
            raise InsidersError(f"{DSN_ENV}: port={port_text} cannot be passed on to dbt, whose profile takes one "
                                "port number (give one host and port)")
        if "options" not in given and os.environ.get("PGOPTIONS"):
            given["options"] = os.environ["PGOPTIONS"]  # what libpq would have used; ours are added to it
        if "options" in given:
            given["options"] = _without_pipeline_settings(given["options"])
            if not given["options"]:
                del given["options"]
        _refuse_what_dbt_cannot_take(given)
        _check_files(given)
        return cls(host=host, port=int(port_text), user=user, password=password, dbname=dbname, embedded=False,
                   name=configured_target_name(), params=tuple(given.items()))


def configured_dsn() -> str | None:
    return os.environ.get(DSN_ENV) or None
