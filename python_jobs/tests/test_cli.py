"""The console as a user sees it: `insiders` run as its own process, its output piped (not a terminal), against a
database of the test session's server. One demo run is shared by the tests that read it (it takes a while)."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable

import psycopg
import pytest

from insiders import __version__, progress
from insiders.cli import build_parser
from insiders.settings import Paths, Target

MAX_LINES = 40  # issue 11: `insiders run` on the demo data prints at most 40 lines, the summary included
STAGES = ("database", "load", "dbt build (features)", "segments, forecast and Insiders", "dbt build (segment marts)")
ANSI = re.compile(r"\x1b\[")


def insiders(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "insiders.cli", *args], env=env, capture_output=True, text=True,
                          check=False)


def lines_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    return result.stdout.splitlines() + result.stderr.splitlines()


@pytest.fixture(scope="module")
def cli_target(new_database: Callable[..., Target]) -> Target:
    return new_database()


@pytest.fixture(scope="module")
def cli_env(cli_target: Target, test_paths: Paths) -> dict[str, str]:
    env = {**os.environ, "INSIDERS_DSN": cli_target.url, "INSIDERS_STATE_DIR": str(test_paths.state_dir)}
    for name in ("NO_COLOR", "FORCE_COLOR", "INSIDERS_DSN_FILE"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def first_run(cli_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`insiders run` on the demo data into an empty database, as a new user's first command."""
    return insiders(cli_env, "run")


@pytest.fixture(scope="module")
def verbose_json_run(cli_env: dict[str, str], first_run) -> subprocess.CompletedProcess[str]:
    """The same run again with the flags after the subcommand: dbt's log on stderr, JSON alone on stdout."""
    return insiders(cli_env, "run", "-v", "--json")


def test_run_prints_one_line_per_stage_and_the_summary_within_40_lines(first_run):
    assert first_run.returncode == 0, first_run.stderr[-3000:]
    output = lines_of(first_run)
    assert len(output) <= MAX_LINES, "\n".join(output)
    for stage in STAGES:
        stage_lines = [line for line in output if line.startswith(f"✓ {stage} ")]
        assert len(stage_lines) == 1, (stage, output)
        assert re.search(r"\d+\.\d s", stage_lines[0]), stage_lines[0]
    assert not any(line.startswith(("✗", "▶")) for line in output)
    assert not ANSI.search(first_run.stdout + first_run.stderr)  # piped: no colour codes
    assert "Running with dbt=" not in first_run.stderr  # dbt's own log only with -v
    # the summary is the command's result: on stdout, with the figures
    assert first_run.stdout.startswith("done in ")
    assert re.search(r"customers +[\d,]+, gross revenue [\d,]+\.\d\d", first_run.stdout)
    assert re.search(r"Insiders +[\d,]+ by \w+", first_run.stdout)


def test_verbose_shows_dbt_log_and_json_is_alone_on_stdout(verbose_json_run, cli_target):
    assert verbose_json_run.returncode == 0, verbose_json_run.stderr[-3000:]
    assert "Running with dbt=" in verbose_json_run.stderr
    assert re.search(r"\d+ of \d+ START sql table model marts\.dim_customers", verbose_json_run.stderr)
    summary = json.loads(verbose_json_run.stdout)  # nothing but JSON on stdout
    with psycopg.connect(cli_target.url) as conn:
        customers, revenue = conn.execute(
            "select count(*), sum(gross_revenue) from marts.fct_customer_features where as_of_date = %s",
            (summary["as_of"],)).fetchone()
        insiders_row, segments = conn.execute(
            "select max(n_customers) filter (where segment_id = -1), count(*) filter (where segment_id <> -1)"
            " from marts.fct_segment_summary where as_of_date = %s", (summary["as_of"],)).fetchone()
    assert summary["as_of"] == "2011-12-09"
    assert summary["customers"] == customers
    assert summary["gross_revenue"] == pytest.approx(float(revenue), abs=0.01)
    assert summary["insiders"] == insiders_row
    assert len(summary["segments"]) == segments
    assert sum(row["customers"] for row in summary["segments"]) == customers
    assert summary["lines_loaded"] == 0  # the demo file was loaded by the first run
    assert set(summary["stage_seconds"]) >= set(STAGES)


def test_docs_writes_one_static_page_with_the_exposures(cli_env, first_run, tmp_path):
    result = insiders(cli_env, "docs", "--out", str(tmp_path / "site"))
    assert result.returncode == 0, result.stderr[-3000:]
    page = tmp_path / "site" / "index.html"
    assert str(page) in result.stdout
    text = page.read_text(encoding="utf-8")
    # the manifest and the catalog are inside the page: readable from disk, no server
    for name in ("metabase_insiders_dashboard", "insiders_clustering_job", "fct_customer_features"):
        assert name in text


def test_a_failing_dbt_test_is_named_in_one_short_output(cli_env, cli_target, verbose_json_run):
    """A label written by a model fitted on later data (what a backfill of an earlier version left behind):
    the singular test assert_no_label_from_a_later_model fails in the segment marts' build."""
    with psycopg.connect(cli_target.url) as conn:
        conn.execute(
            "insert into ml.model_runs select 'left-by-an-old-backfill', data_cutoff_date - 90, 'score',"
            " model_run_id, created_at, candidate_id, n_segments, n_customers, parameters, metrics, counts,"
            " stage_seconds, artifact_path, artifact_sha256, library_versions, data_cutoff_date, refit_reason,"
            " insider_definition, program, limits from ml.model_runs where mode = 'fit' limit 1")
    result = insiders(cli_env, "run")
    output = lines_of(result)
    assert result.returncode == 1
    assert len(output) <= MAX_LINES, "\n".join(output)
    assert "Traceback" not in result.stderr
    assert any(line.startswith("✗ dbt build (segment marts) ") and "failed" in line for line in output)
    assert not any(line.startswith("✓ dbt build (segment marts)") for line in output)
    failure = next(line for line in output if "assert_no_label_from_a_later_model" in line)
    assert "Got 1 result" in failure
    assert "dbt.log" in result.stderr  # where the whole story is
    log_file = re.search(r"dbt's log: (\S+dbt\.log)", result.stderr).group(1)
    with open(log_file, encoding="utf-8") as log:  # written, and it tells the story
        assert "Failure in test assert_no_label_from_a_later_model" in log.read()
    assert result.stdout == ""  # no summary after a failure


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_database_is_one_line(cli_env, cli_target):
    env = {**cli_env, "INSIDERS_DSN": cli_target.url.replace(f":{cli_target.port}/", f":{_closed_port()}/")}
    result = insiders(env, "docs", "--out", os.devnull)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: dbt docs generate --static failed: the database is unreachable")
    assert "dbt.log" in lines[0]


def test_version(cli_env):
    result = insiders(cli_env, "--version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"insiders {__version__} (dbt-core 1.11.")


def test_every_command_has_an_example_and_takes_the_flags_after_its_name():
    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    assert {"run", "load", "cluster", "backtest", "docs", "dbt"} <= set(commands.choices)
    for name, command in commands.choices.items():
        assert "example:\n  insiders " + name in command.format_help(), name
    assert parser.parse_args(["run", "-v", "--json"]).verbose
    assert parser.parse_args(["-v", "run"]).verbose
    assert not getattr(parser.parse_args(["run"]), "verbose", False)
    for name in ("run", "load", "cluster", "backtest"):
        args = [name, "--json"] + (["FILE"] if name == "load" else [])
        assert parser.parse_args(args).json, name
    with pytest.raises(SystemExit):
        parser.parse_args(["report", "--json"])


def test_progress_off_a_terminal_is_a_line_every_ten_seconds_with_rate_and_time_left(monkeypatch, capsys):
    clock = {"now": 1000.0}
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock["now"])
    progress.setup_logging()
    with progress.track("load lines.csv", total=1_000_000) as tracker:
        for _ in range(90):  # batches for 9 s: no line yet
            clock["now"] += 0.1
            tracker.advance(1_000)
        clock["now"] += 1.0
        tracker.advance(10_000)  # 100,000 lines in 10 s
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["  load lines.csv: 100,000 of 1,000,000 lines (10%), 10,000 lines/s, about 1:30 left"]


def test_the_command_leaves_after_its_threads_exit_handlers_and_output(tmp_path):
    """`insiders` leaves without Python's teardown (cli.entry): a thread that is not a daemon still finishes, an
    executor left open stops, exit handlers still run, what was printed to a pipe still arrives, and the exit code
    is main()'s."""
    script = (
        "import atexit, sys, threading, time, insiders.cli as cli\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "pool = ThreadPoolExecutor(1)  # left open, and referenced: its worker waits for the next task\n"
        "def main():\n"
        "    atexit.register(print, 'exit handler ran')\n"
        "    threading.Thread(target=lambda: (time.sleep(0.3), print('thread finished'))).start()\n"
        "    pool.submit(sys.stdout.write, 'pool task ran\\n').result()\n"
        "    print('printed by main')\n"
        "    return 3\n"
        "cli.main = main\n"
        "cli.entry()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert done.returncode == 3
    assert done.stdout.splitlines() == ["pool task ran", "printed by main", "thread finished", "exit handler ran"]
