"""Runs dbt against the resolved target: a generated profiles dir and the target's environment variables."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import InsidersError
from .settings import Paths, Target

log = logging.getLogger(__name__)


def _reader_roles(target: Target) -> str:
    """The read-only roles that exist, for dbt's grants on the marts (a grant to a missing role would fail)."""
    from . import db
    from .roles import existing_reader_roles

    try:
        with db.connect(target) as conn:
            return ",".join(existing_reader_roles(conn))
    except InsidersError:
        return ""


def dbt_environment(paths: Paths, target: Target) -> dict[str, str]:
    profiles_dir = paths.dbt_profiles_dir
    profiles_dir.mkdir(parents=True, exist_ok=True)
    # the same profile users copy by hand: it reads the connection from INSIDERS_PG* variables
    shutil.copyfile(paths.project_dir / "profiles.yml.example", profiles_dir / "profiles.yml")
    env = dict(os.environ)
    env.update(target.dbt_env())
    env.setdefault("INSIDERS_READER_ROLES", _reader_roles(target))
    env.update({"DBT_PROFILES_DIR": str(profiles_dir), "DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"})
    # compiled SQL, the manifest and partial-parse state belong to this state directory: two checkouts' or test
    # sessions' dbt runs never overwrite each other's, and each keeps its own partial parse warm
    env.setdefault("DBT_TARGET_PATH", str(paths.state_dir / "dbt-target"))
    env.setdefault("DBT_LOG_PATH", str(paths.state_dir / "dbt-logs"))
    return env


def tool_executable(tool: str) -> str:
    """The tool installed beside this Python (the project's venv), else the one on PATH."""
    candidate = Path(sys.executable).with_name(tool)
    return str(candidate) if candidate.exists() else (shutil.which(tool) or tool)


def run_tool(paths: Paths, target: Target, tool: str, args: list[str], *, quiet: bool = False,
             ) -> subprocess.CompletedProcess[str]:
    """Run `tool ARGS` (dbt, sqlfluff) in the project directory, connected to the target."""
    command = [tool_executable(tool), *args]
    log.debug("running %s", " ".join(command))
    return subprocess.run(
        command, cwd=paths.project_dir, env=dbt_environment(paths, target), text=True,
        stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None, check=False,
    )


def run_dbt(paths: Paths, target: Target, args: list[str], *, check: bool = True, quiet: bool = False) -> int:
    """Run `dbt ARGS` in the project directory; raise with dbt's own summary when it fails."""
    result = run_tool(paths, target, "dbt", args, quiet=quiet)
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout or "").splitlines()[-30:]) if quiet else ""
        raise InsidersError(f"dbt {' '.join(args)} failed (exit {result.returncode}){': ' + tail if tail else ''}")
    return result.returncode
