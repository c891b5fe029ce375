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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InsidersError
from .progress import Tracker, colour, track, verbose
from .settings import Paths

if TYPE_CHECKING:
    from .engines import DbtTarget

log = logging.getLogger(__name__)


def dbt_environment(paths: Paths, target: DbtTarget) -> dict[str, str]:
    """The variables dbt reads: the target's connection (every parameter of it, see Target.dbt_env), the profiles
    dir, where its artifacts go. The read-only roles' grants need nothing here: default privileges give them every
    table dbt builds in the marts (roles.py)."""
    profiles_dir = paths.dbt_profiles_dir
    profiles_dir.mkdir(parents=True, exist_ok=True)
    # the same profile users copy by hand: it reads the connection from INSIDERS_PG* variables
    shutil.copyfile(paths.project_dir / "profiles.yml.example", profiles_dir / "profiles.yml")
    env = dict(target.dbt_env())
    env.update({"DBT_PROFILES_DIR": str(profiles_dir), "DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"})
    # compiled SQL, the manifest and partial-parse state belong to this state directory: two checkouts' or test
    # sessions' dbt runs never overwrite each other's, and each keeps its own partial parse warm
    env["DBT_TARGET_PATH"] = str(dbt_target_path(paths))
    env["DBT_LOG_PATH"] = str(dbt_log_path(paths))
    return env


def dbt_target_path(paths: Paths) -> Path:
    """Where dbt writes compiled SQL, its artifacts and the static docs page; a relative DBT_TARGET_PATH (a user's
    own) is relative to the project directory, as dbt reads it."""
    return paths.project_dir / (os.environ.get("DBT_TARGET_PATH") or paths.state_dir / "dbt-target")


def dbt_log_path(paths: Paths) -> Path:
    """Where dbt writes dbt.log: everything it did, at debug level."""
    return Path(os.environ.get("DBT_LOG_PATH") or paths.state_dir / "dbt-logs")


def tool_executable(tool: str) -> str:
    """The tool installed beside this Python (the project's venv), else the one on PATH."""
    candidate = Path(sys.executable).with_name(tool)
    return str(candidate) if candidate.exists() else (shutil.which(tool) or tool)


def run_tool(paths: Paths, target: DbtTarget, tool: str, args: list[str], *, quiet: bool = False,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `tool ARGS` (dbt, sqlfluff, mf) as a process in the project directory, connected to the target, with
    `env` on top: for a user's own dbt commands, whose output is theirs to read."""
    command = [tool_executable(tool), *args]
    log.debug("running %s", " ".join(command))
    environment = {**os.environ, **dbt_environment(paths, target), **(env or {})}
    if quiet or not sys.stdout.isatty() or os.environ.get("NO_COLOR"):
        environment.setdefault("DBT_USE_COLORS", "false")  # dbt colours its output even into a pipe or a file
    return subprocess.run(
        command, cwd=paths.project_dir, env=environment, text=True,
        stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None, check=False,
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


# one parsed manifest per (project, target): the manifest carries the database name in every relation
_manifests: dict[tuple[str, ...], object] = {}
# node statuses that fail a build; a failed node's dependants are skipped
FAILED_STATUSES = {"error", "fail", "runtime error"}
# how psycopg2 (dbt-postgres) words a database that is not there, or went away during the build
CONNECTION_PROBLEMS = ("connection to server", "server closed the connection", "terminating connection",
                       "could not connect", "connection already closed", "the database system is")
SHOWN_FAILURES = 10
# the commands that run nodes and write run_results.json
NODE_COMMANDS = {"build", "run", "test", "seed", "snapshot"}


def _message_lines(text: str) -> list[str]:
    """dbt's message without its frame: the "Database Error in model x (path)" heading, the compiled code's path
    and blank lines go; what the database or the test said stays."""
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("compiled code at", "Encountered an error")) or (
                " Error in " in line and line.endswith(")")) or line in {"Database Error", "Runtime Error"}:
            continue
        lines.append(line)
    return lines


def _connection_problem(texts: list[str]) -> str | None:
    """The first line that says the database is unreachable, if any does."""
    for text in texts:
        for line in _message_lines(text):
            if any(problem in line.lower() for problem in CONNECTION_PROBLEMS):
                return line
    return None


def failure_summary(result: object, exception: BaseException | None) -> tuple[str, list[str]]:
    """What went wrong in a dbt command, for people: a headline and one line per failed node ("test name:
    message"). A database that is unreachable is one headline and no node lines (every node says the same)."""
    failed, skipped = [], 0
    for node_result in getattr(result, "results", None) or []:
        status = str(getattr(node_result, "status", "")).lower()
        if status == "skipped":
            skipped += 1
        if status in FAILED_STATUSES:
            node = getattr(node_result, "node", None)
            failed.append((getattr(node, "resource_type", "node"), getattr(node, "name", "?"),
                           str(node_result.message or status)))
    texts = [message for *_, message in failed] + ([str(exception)] if exception else [])
    gone = _connection_problem(texts)
    if gone:
        return f"the database is unreachable: {gone}", []
    if not failed:
        detail = _message_lines(str(exception or "")) or ["see dbt's log"]
        return "; ".join(detail[:SHOWN_FAILURES]), []
    total = len(getattr(result, "results", None) or [])
    headline = f"{len(failed)} of {total} nodes failed" + (f", {skipped} skipped" if skipped else "")
    lines = []
    for resource_type, name, message in failed[:SHOWN_FAILURES]:
        said = _message_lines(message)
        lines.append(f"{resource_type} {name}: {' '.join(said[:3]) if said else message.strip()}")
    if len(failed) > SHOWN_FAILURES:
        lines.append(f"… and {len(failed) - SHOWN_FAILURES} more")
    return headline, lines


def forget(target: DbtTarget) -> None:
    """Drop the parsed manifests of a target that is going away (a backtest's scratch database or schemas)."""
    for key in [key for key in _manifests if key[1] == target.url]:
        del _manifests[key]


class _Events:
    """dbt's events while it runs in this process: its console log is off; this counts the nodes done for the
    progress display and, with -v, writes dbt's own log lines (info and above) through our console."""

    def __init__(self, tracker: Tracker | None, on_node_start: Mapping[str, Callable[[], None]] | None = None) -> None:
        self.tracker = tracker
        self.on_node_start = dict(on_node_start or {})
        self.dbt_log = logging.getLogger("insiders.dbt")
        self.project_unchanged = False

    def __call__(self, event) -> None:
        name, data = event.info.name, event.data
        if name == "PartialParsingSkipParsing":  # no file changed since the saved parse
            self.project_unchanged = True
        if name == "NodeStart" and data.node_info.unique_id in self.on_node_start:
            try:
                self.on_node_start.pop(data.node_info.unique_id)()
            except Exception:  # dbt sends this before its own error handling: raised here, its build would hang
                logging.getLogger("insiders").warning("what was to start beside %s failed",
                                                      data.node_info.unique_id, exc_info=True)
        if self.tracker is not None:
            if name == "LogStartLine" and getattr(data, "total", 0) and self.tracker.total is None:
                self.tracker.set_total(int(data.total))
            elif name == "NodeFinished":
                self.tracker.advance()
        if verbose() and event.info.level in {"info", "warn", "error"}:
            for line in (event.info.msg or "").splitlines() or [""]:
                self.dbt_log.info("  %s", line)


def _console_flags() -> list[str]:
    """dbt writes nothing to the console; its log file keeps each node's start and result and every error and
    failure, without colour codes (left unset, the file's level follows the console's `none`: no log at all;
    at debug, which adds every statement, a day's run took 2-3 s longer at 10 million lines, so the SQL is left to
    `insiders dbt …`). Its messages carry colour codes only when they are shown on a colour terminal (-v)."""
    return ["--log-level", "none", "--log-level-file", "info",
            "--use-colors" if colour() else "--no-use-colors", "--no-use-colors-file"]


def write_manifest(manifest: object, target_path: Path, *, unchanged: bool) -> None:
    """manifest.json and semantic_manifest.json, as `dbt parse` writes them (for the tools that read dbt's
    artifacts, and mf), unless the parse read the saved one as it was (no file changed; any other change, of the
    target, profile, vars or dbt's version, parses again and saves anew) and they were written after it was saved:
    then their nodes are this project's, and writing them again cost 0.5-0.7 s of every run. Their invocation id
    and time stay those of the parse that wrote them. dbt plugins' own artifacts are not written (none is
    installed)."""
    from dbt.parser.manifest import write_manifest as write_dbt_manifest

    written = [target_path / "manifest.json", target_path / "semantic_manifest.json"]
    saved_parse = target_path / "partial_parse.msgpack"
    if unchanged and saved_parse.exists() and all(
            path.exists() and path.stat().st_mtime >= saved_parse.stat().st_mtime for path in written):
        return
    try:
        write_dbt_manifest(manifest, str(target_path))
    except OSError as exc:
        raise InsidersError(f"cannot write dbt's manifest in {target_path}: {exc.strerror or exc}") from exc


def keep_node_connections_open() -> None:
    """Within one in-process build, each dbt thread keeps its PostgreSQL connection from one node to the next.

    dbt-postgres closes a node's connection when the node ends and the next node opens a new one: about 200 in a
    day's run, each a new server process, an authentication and cold catalog caches (about 20 ms each here: dbt's
    threads spent 2.25 s of a day's run at 10 million lines opening them). A connection kept is reset to a new session's
    state first (`discard all`: temporary tables, settings, prepared statements, advisory locks; then the
    profile's role again), so that no node sees what an earlier one left. dbt still closes every connection at the
    end of the build, those of the short-lived threads it sets up with (schemas, relation cache) too; a connection
    that cannot be reset is closed as before. What this gives up: a connection the server drops while it waits for
    its thread's next node (a server restarted mid-build, an idle timeout of a proxy) fails that node, which would
    have opened a new one."""
    from dbt.adapters.contracts.connection import ConnectionState
    from dbt.adapters.postgres.connections import PostgresConnectionManager

    close_on_release = PostgresConnectionManager.release
    if getattr(close_on_release, "keeps_connections_open", False):
        return

    def release(manager: PostgresConnectionManager) -> None:
        connection = manager.get_if_exists()
        if connection is None or connection.state != ConnectionState.OPEN:
            return close_on_release(manager)
        try:
            reset_session(connection.handle, role=connection.credentials.role)
            connection.transaction_open = False
        except Exception as exc:  # any failure: closed, as dbt would have closed it
            log.debug("dbt's connection %s could not be reset, closed instead: %s", connection.name, exc)
            close_on_release(manager)

    release.keeps_connections_open = True  # type: ignore[attr-defined]
    PostgresConnectionManager.release = release  # type: ignore[method-assign]


def reset_session(handle, *, role: str | None = None) -> None:
    """Bring a psycopg2 connection back to a new session's state: its transaction rolled back, then `discard all`
    (outside a transaction, as PostgreSQL requires; the settings go back to those the connection started with),
    the ISO date style psycopg2 sets on connecting to a server whose default is another, and the role dbt's
    profile sets on connecting."""
    handle.rollback()
    autocommit = handle.autocommit
    handle.autocommit = True
    try:
        with handle.cursor() as cursor:
            cursor.execute("discard all")
            if not (handle.get_parameter_status("DateStyle") or "ISO").startswith("ISO"):
                cursor.execute("set datestyle to 'ISO'")  # psycopg2 parses dates in ISO only
            if role:
                cursor.execute(f"set role {role}")  # as dbt-postgres words it when it connects
    finally:
        handle.autocommit = autocommit


def invoke_dbt(paths: Paths, target: DbtTarget, args: list[str], *,
               on_node_start: Mapping[str, Callable[[], None]] | None = None) -> object:
    """Run `dbt ARGS` in this process (parsing the project only the first time for this target) and return its
    result; raise with what failed (the failed nodes and their messages, or the one problem) when it fails.
    dbt's own log goes to its log file, and to the console with -v only. `on_node_start` maps nodes' unique ids
    to what to call (in dbt's thread, once) when dbt starts them."""
    from dbt.cli.main import dbtRunner

    keep_node_connections_open()
    env = dbt_environment(paths, target)
    log_file = dbt_log_path(paths) / "dbt.log"
    key = (str(paths.project_dir), target.url, env["DBT_TARGET_PATH"])
    # the target named on the command line too, not only through INSIDERS_TARGET: dbt's partial parsing keys its
    # saved manifest on the command line's target and not on the environment, and a manifest carries each target's
    # schema names (a backtest's scratch target on Spark would otherwise build into the main target's schemas)
    common = ["--project-dir", str(paths.project_dir), "--profiles-dir", env["DBT_PROFILES_DIR"],
              "--target", target.name]
    with _environment(env):
        if key not in _manifests:
            events = _Events(None)
            parsed = dbtRunner(callbacks=[events]).invoke([*_console_flags(), "parse", "--no-write-json", *common])
            if not parsed.success:
                headline, _ = failure_summary(None, parsed.exception)
                raise InsidersError(f"dbt could not parse the project: {headline} (dbt's log: {log_file})")
            _manifests[key] = parsed.result
            write_manifest(parsed.result, dbt_target_path(paths), unchanged=events.project_unchanged)
        log.debug("dbt %s", " ".join(args))
        # the parse above wrote manifest.json if it had changed; a build would write it again at its end (0.5-0.7 s
        # for this project), so a build writes no JSON and its run_results.json is written here
        runs_nodes = args[0] in NODE_COMMANDS
        with track(f"dbt {args[0]}", unit="nodes") as tracker:
            outcome = dbtRunner(manifest=_manifests[key], callbacks=[_Events(tracker, on_node_start)]).invoke(
                [*_console_flags(), *args, *(["--no-write-json"] if runs_nodes else []), *common])
        if runs_nodes and hasattr(outcome.result, "write"):
            outcome.result.write(str(dbt_target_path(paths) / "run_results.json"))
    if not outcome.success:
        headline, lines = failure_summary(outcome.result, outcome.exception)
        raise InsidersError("\n  ".join([f"dbt {' '.join(args)} failed: {headline} (dbt's log: {log_file})",
                                         *lines]))
    return outcome.result


def run_dbt(paths: Paths, target: DbtTarget, args: list[str], *, check: bool = True, quiet: bool = False) -> int:
    """Run `dbt ARGS` as a process, its output shown (`insiders dbt ...`); raise with dbt's summary when it fails
    and `check`."""
    result = run_tool(paths, target, "dbt", args, quiet=quiet)
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout or "").splitlines()[-30:]) if quiet else ""
        raise InsidersError(f"dbt {' '.join(args)} failed (exit {result.returncode}){': ' + tail if tail else ''}")
    return result.returncode
