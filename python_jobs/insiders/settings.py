"""Where the project lives and which database it talks to, resolved once per command."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

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
    the schemas) it writes under."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    embedded: bool
    name: str = PRODUCTION_TARGET

    def schema(self, role: str) -> str:
        return schema_name(role, self.name)

    @property
    def search_path(self) -> str:
        return ",".join(self.schema(role) for role in SCHEMA_ROLES)

    @property
    def url(self) -> str:
        """The URL every connection of the pipeline opens: the Python job names tables without their schema and
        finds them through the target's search_path, so that one piece of SQL serves every target."""
        options = f"-c search_path={self.search_path} -c {TARGET_SETTING}={self.name}"
        return self.server_url + "?" + urlencode({"options": options}, quote_via=quote)

    @property
    def server_url(self) -> str:
        """The database's URL without the pipeline's session options: what a person or another tool connects to."""
        return self._server_url(quote(self.password, safe=""))

    @property
    def safe_url(self) -> str:
        """The server URL with the password masked, for logs."""
        return self._server_url("***")

    def _server_url(self, password_text: str) -> str:
        auth = quote(self.user, safe="") + (f":{password_text}" if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.dbname, safe='')}"

    def dbt_env(self) -> dict[str, str]:
        """Environment variables read by profiles.yml.example."""
        return {
            "INSIDERS_PGHOST": self.host,
            "INSIDERS_PGPORT": str(self.port),
            "INSIDERS_PGUSER": self.user,
            "INSIDERS_PGPASSWORD": self.password,
            "INSIDERS_PGDATABASE": self.dbname,
            TARGET_ENV: self.name,
        }

    @classmethod
    def from_dsn(cls, dsn: str) -> Target:
        params = conninfo_to_dict(dsn)
        return cls(
            host=str(params.get("host") or "127.0.0.1"),
            port=int(params.get("port") or 5432),
            user=str(params.get("user") or os.environ.get("USER", "postgres")),
            password=str(params.get("password") or os.environ.get("PGPASSWORD", "")),
            dbname=str(params.get("dbname") or "postgres"),
            embedded=False,
            name=configured_target_name(),
        )


def configured_dsn() -> str | None:
    return os.environ.get(DSN_ENV) or None
