"""Where the project lives and which database it talks to, resolved once per command."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

DSN_ENV = "INSIDERS_DSN"
PROJECT_DIR_ENV = "INSIDERS_PROJECT_DIR"
STATE_DIR_ENV = "INSIDERS_STATE_DIR"


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


@dataclass(frozen=True)
class Target:
    """Connection parameters of the PostgreSQL database the pipeline writes to."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    embedded: bool

    @property
    def url(self) -> str:
        from urllib.parse import quote

        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.dbname, safe='')}"

    @property
    def safe_url(self) -> str:
        """The URL with the password masked, for logs."""
        return self.url.replace(f":{self.password}@", ":***@") if self.password else self.url

    def dbt_env(self) -> dict[str, str]:
        """Environment variables read by profiles.yml.example."""
        return {
            "INSIDERS_PGHOST": self.host,
            "INSIDERS_PGPORT": str(self.port),
            "INSIDERS_PGUSER": self.user,
            "INSIDERS_PGPASSWORD": self.password,
            "INSIDERS_PGDATABASE": self.dbname,
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
        )


def configured_dsn() -> str | None:
    return os.environ.get(DSN_ENV) or None
