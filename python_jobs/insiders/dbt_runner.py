"""Runs dbt against the resolved target: a generated profiles dir and the target's environment variables.

The pipeline's own builds run dbt in this process (`dbtRunner`) and parse the project once per target: the
manifest is kept and handed to every later build, and dbt's partial parsing keeps the next process's parse short.
What a build computes (the as-of dates) travels through the control tables, not through `--vars`, because
changing a var forces dbt to parse the whole project again.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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
    """The variables dbt reads: the target's connection, the profiles dir, where its artifacts go."""
    profiles_dir = paths.dbt_profiles_dir
    profiles_dir.mkdir(parents=True, exist_ok=True)
    # the same profile users copy by hand: it reads the connection from INSIDERS_PG* variables
    shutil.copyfile(paths.project_dir / "profiles.yml.example", profiles_dir / "profiles.yml")
    env = dict(target.dbt_env())
    env["INSIDERS_READER_ROLES"] = os.environ.get("INSIDERS_READER_ROLES") or _reader_roles(target)
    env.update({"DBT_PROFILES_DIR": str(profiles_dir), "DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"})
    # compiled SQL, the manifest and partial-parse state belong to this state directory: two checkouts' or test
    # sessions' dbt runs never overwrite each other's, and each keeps its own partial parse warm
    env["DBT_TARGET_PATH"] = os.environ.get("DBT_TARGET_PATH") or str(paths.state_dir / "dbt-target")
    env["DBT_LOG_PATH"] = os.environ.get("DBT_LOG_PATH") or str(paths.state_dir / "dbt-logs")
    return env


def tool_executable(tool: str) -> str:
    """The tool installed beside this Python (the project's venv), else the one on PATH."""
    candidate = Path(sys.executable).with_name(tool)
    return str(candidate) if candidate.exists() else (shutil.which(tool) or tool)


def run_tool(paths: Paths, target: Target, tool: str, args: list[str], *, quiet: bool = False,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `tool ARGS` (dbt, sqlfluff, mf) as a process in the project directory, connected to the target, with
    `env` on top: for a user's own dbt commands, whose output is theirs to read."""
    command = [tool_executable(tool), *args]
    log.debug("running %s", " ".join(command))
    return subprocess.run(
        command, cwd=paths.project_dir, env={**os.environ, **dbt_environment(paths, target), **(env or {})},
        text=True, stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None,
        check=False,
    )


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# one parsed manifest per (project, target, roles): the manifest carries the database name in every relation
_manifests: dict[tuple[str, ...], object] = {}


def _failures(result: object) -> str:
    """The failed nodes of a dbt result and dbt's message for each."""
    lines = []
    for node_result in getattr(result, "results", None) or []:
        status = str(getattr(node_result, "status", "")).lower()
        if status in {"error", "fail", "runtime error"}:
            name = getattr(getattr(node_result, "node", None), "unique_id", "?")
            lines.append(f"{name}: {(node_result.message or status).strip()}")
    return "\n".join(lines[:20])


def forget(target: Target) -> None:
    """Drop the parsed manifests of a target that is going away (a backtest's scratch database)."""
    for key in [key for key in _manifests if key[1] == target.url]:
        del _manifests[key]


def invoke_dbt(paths: Paths, target: Target, args: list[str]) -> None:
    """Run `dbt ARGS` in this process (parsing the project only the first time for this target); raise with the
    failed nodes' messages when it fails. dbt's own console output is kept to errors."""
    from dbt.cli.main import dbtRunner

    env = dbt_environment(paths, target)
    key = (str(paths.project_dir), target.url, env["INSIDERS_READER_ROLES"], env["DBT_TARGET_PATH"])
    common = ["--project-dir", str(paths.project_dir), "--profiles-dir", env["DBT_PROFILES_DIR"]]
    with _environment(env):
        if key not in _manifests:
            parsed = dbtRunner().invoke(["--quiet", "parse", *common])
            if not parsed.success:
                raise InsidersError(f"dbt could not parse the project: {parsed.exception}")
            _manifests[key] = parsed.result
        log.debug("dbt %s", " ".join(args))
        outcome = dbtRunner(manifest=_manifests[key]).invoke(["--quiet", *args, *common])
    if not outcome.success:
        detail = _failures(outcome.result) or str(outcome.exception or "see the dbt log")
        raise InsidersError(f"dbt {' '.join(args)} failed:\n{detail}\n(dbt's log: {env['DBT_LOG_PATH']}/dbt.log)")


def run_dbt(paths: Paths, target: Target, args: list[str], *, check: bool = True, quiet: bool = False) -> int:
    """Run `dbt ARGS` as a process, its output shown (`insiders dbt ...`); raise with dbt's summary when it fails
    and `check`."""
    result = run_tool(paths, target, "dbt", args, quiet=quiet)
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout or "").splitlines()[-30:]) if quiet else ""
        raise InsidersError(f"dbt {' '.join(args)} failed (exit {result.returncode}){': ' + tail if tail else ''}")
    return result.returncode
