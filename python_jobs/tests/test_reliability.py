"""Concurrent and killed runs: one writer at a time, and a SIGKILL at any point leaves the database as it was before
the killed command or as after it, never in between."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from insiders.cli import main
from insiders.demo_data import generate
from insiders.embedded import EmbeddedServer
from insiders.files import replaced_atomically
from insiders.locks import writer_lock
from insiders.settings import Paths

INSIDERS = [sys.executable, "-m", "insiders.cli"]


def _env(target, test_paths) -> dict[str, str]:
    return {**os.environ, "INSIDERS_DSN": target.url, "INSIDERS_STATE_DIR": str(test_paths.state_dir),
            "NO_COLOR": "1"}


def _start(args: list[str], target, test_paths) -> subprocess.Popen[str]:
    return subprocess.Popen([*INSIDERS, *args], env=_env(target, test_paths), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _wait_for_session(target, process: subprocess.Popen[str], condition: str, params: tuple, awaited: str,
                      timeout: float = 120) -> None:
    """Block until a session of pg_stat_activity matches `condition` (`awaited` says what that means), while
    `process` still runs."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(target.url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                _, err = process.communicate()
                pytest.fail(f"the command ended (exit {process.returncode}) before {awaited}: {err}")
            if conn.execute(f"select exists (select 1 from pg_stat_activity where {condition})", params).fetchone()[0]:
                return
            time.sleep(0.05)
    pytest.fail(f"not {awaited} within {timeout} s")


def _wait_for_query(target, pattern: str, process: subprocess.Popen[str], timeout: float = 120) -> None:
    """Block until another session runs a statement matching `pattern` (ILIKE), while `process` still runs."""
    _wait_for_session(target, process, "pid <> pg_backend_pid() and state = 'active' and query ilike %s",
                      (pattern,), f"a session ran {pattern!r}", timeout)


def _kill(process: subprocess.Popen[str], target) -> None:
    with contextlib.suppress(ProcessLookupError):  # killed already
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    # the server ends the killed client's sessions (and their locks) once it notices the closed sockets
    with psycopg.connect(target.url, autocommit=True) as conn:
        for _ in range(200):
            if not conn.execute("select exists (select 1 from pg_stat_activity where pid <> pg_backend_pid()"
                                " and datname = current_database() and backend_type = 'client backend')"
                                ).fetchone()[0]:
                return
            time.sleep(0.05)


@pytest.fixture(scope="module")
def demo_csv(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reliability") / "demo.csv"
    generate(out, n_lines=300_000, seed=11)
    return out


def _counts(target) -> tuple[int, int]:
    with psycopg.connect(target.url) as conn:
        if conn.execute("select to_regclass('raw.load_batches') is null").fetchone()[0]:
            return 0, 0  # a killed first load takes the schema it created with it
        return conn.execute("select (select count(*) from raw.load_batches),"
                            " (select count(*) from raw.invoice_lines)").fetchone()


def test_two_first_loads_of_one_file_at_once_load_it_once(target, test_paths, demo_csv):
    first, second = (_start(["load", str(demo_csv)], target, test_paths) for _ in range(2))
    outputs = [process.communicate(timeout=600) for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0], outputs
    assert not any("Traceback" in err for _, err in outputs), outputs
    assert _counts(target) == (1, 300_000)
    assert sum("already loaded" in out for out, _ in outputs) == 1


def test_a_second_writer_waits_for_the_first_or_stops_with_no_wait(target, test_paths, demo_csv):
    with writer_lock(target, "run"):
        refused = _start(["load", "--no-wait", str(demo_csv)], target, test_paths)
        _, err = refused.communicate(timeout=120)
        assert refused.returncode == 1
        assert "insiders run" in err and "Traceback" not in err
        waiting = _start(["load", str(demo_csv)], target, test_paths)
        time.sleep(8)
        assert waiting.poll() is None, "the second writer did not wait"
        assert _counts(target)[0] == 0
    _, err = waiting.communicate(timeout=600)
    assert waiting.returncode == 0 and "waiting for" in err and "insiders run" in err
    assert _counts(target) == (1, 300_000)


def _writer_holds_the_lock(target, command: str, process: subprocess.Popen[str], timeout: float = 120) -> None:
    """Block until `insiders COMMAND` holds the writer lock (its session's application name says so)."""
    _wait_for_session(target, process, "application_name like %s",
                      (f"insiders writer: insiders {command} (pid {process.pid})%",),
                      f"insiders {command} held the writer lock", timeout)


def test_two_runs_at_once_one_completes_and_the_other_waits_or_refuses(target, test_paths, demo_csv):
    first = _start(["run", "--input", str(demo_csv)], target, test_paths)
    _writer_holds_the_lock(target, "run", first)
    refused = _start(["run", "--no-wait", "--input", str(demo_csv)], target, test_paths)
    waiting = _start(["run", "--input", str(demo_csv)], target, test_paths)
    outputs = {name: process.communicate(timeout=900) for name, process in
               (("first", first), ("refused", refused), ("waiting", waiting))}
    codes = {"first": first.returncode, "refused": refused.returncode, "waiting": waiting.returncode}
    assert codes == {"first": 0, "refused": 1, "waiting": 0}, outputs
    assert not any("Traceback" in err for _, err in outputs.values()), outputs
    refusal = outputs["refused"][1].strip().splitlines()
    assert len(refusal) == 1 and "insiders run" in refusal[0] and "--no-wait" in refusal[0], refusal
    assert "waiting for `insiders run" in outputs["waiting"][1]
    assert "nothing new" in outputs["waiting"][1]  # the file was loaded once, by the first run
    with psycopg.connect(target.url) as conn:
        assert conn.execute("select count(*), sum(lines_loaded) from raw.load_batches").fetchone() == (1, 300_000)
        as_of = conn.execute("select max(as_of_date) from ml.customer_segments").fetchone()[0]
        labels, customers = conn.execute(
            "select count(*), count(distinct customer_id) from ml.customer_segments where as_of_date = %s",
            (as_of,)).fetchone()
        assert labels == customers > 0
        features = conn.execute("select count(*) from marts.fct_customer_features where as_of_date = %s",
                                (as_of,)).fetchone()[0]
        assert features == customers


def test_a_load_killed_mid_file_leaves_nothing_and_loads_again(target, test_paths, demo_csv, monkeypatch):
    process = _start(["load", str(demo_csv)], target, test_paths)
    _wait_for_query(target, "copy invoice_lines%", process)
    _kill(process, target)
    assert _counts(target) == (0, 0)
    monkeypatch.setenv("INSIDERS_DSN", target.url)
    monkeypatch.setenv("INSIDERS_STATE_DIR", str(test_paths.state_dir))
    assert main(["load", str(demo_csv)]) == 0
    assert _counts(target) == (1, 300_000)


def _labels(target) -> tuple[int, int]:
    """(labelled customers, model runs that labelled them) at the latest as-of date."""
    with psycopg.connect(target.url) as conn:
        return conn.execute("select count(*), count(distinct run_id) from ml.customer_segments"
                            " where as_of_date = (select max(as_of_date) from ml.customer_segments)").fetchone()


def test_clustering_killed_while_writing_keeps_the_previous_labels(demo_mart, test_paths, monkeypatch):
    monkeypatch.setenv("INSIDERS_DSN", demo_mart.url)
    monkeypatch.setenv("INSIDERS_STATE_DIR", str(test_paths.state_dir))
    assert main(["cluster"]) == 0
    before = _labels(demo_mart)
    assert before[0] > 0 and before[1] == 1
    # hold the writes to the last table of a run (reads go on), so the job is caught in the middle of writing: its
    # model run, labels and forecasts are written in its transaction, the hypotheses not yet; killed there, all of
    # it must go (a table with no DDL to alter, which would wait on the lock before any write)
    blocker = psycopg.connect(demo_mart.url)
    blocker.execute("lock table ml.hypothesis_tests in share mode")
    try:
        process = _start(["cluster", "--refit"], demo_mart, test_paths)
        _wait_for_query(demo_mart, "delete from hypothesis_tests%", process, timeout=600)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        blocker.close()
    _kill(process, demo_mart)
    assert _labels(demo_mart) == before


def test_a_run_killed_during_dbt_recovers_on_the_next_run(target, test_paths, tmp_path, monkeypatch):
    small = tmp_path / "small.csv"
    generate(small, n_lines=60_000, seed=5)
    process = _start(["run", "--input", str(small)], target, test_paths)
    _wait_for_query(target, "%fct_customer_features%", process, timeout=600)
    _kill(process, target)
    monkeypatch.setenv("INSIDERS_DSN", target.url)
    monkeypatch.setenv("INSIDERS_STATE_DIR", str(test_paths.state_dir))
    assert main(["run", "--input", str(small)]) == 0
    with psycopg.connect(target.url) as conn:
        features, labelled, summarised = conn.execute(
            "select (select count(*) from marts.fct_customer_features where as_of_date = latest.as_of_date),"
            " (select count(*) from ml.customer_segments where as_of_date = latest.as_of_date),"
            " (select sum(n_customers) from marts.fct_segment_summary"
            "  where as_of_date = latest.as_of_date and not is_insider)"
            " from (select max(as_of_date) as as_of_date from marts.fct_customer_features) as latest").fetchone()
        assert features > 0 and features == labelled == summarised
        assert conn.execute("select count(*) from raw.load_batches").fetchone()[0] == 1


def test_the_embedded_server_killed_hard_keeps_what_was_committed(own_state_dir):
    server = EmbeddedServer(Paths(project_dir=Path.cwd(), state_dir=own_state_dir))
    target = server.start()
    try:
        with psycopg.connect(target.url) as conn:
            conn.execute("create table public.committed_rows (n integer)")
            conn.execute("insert into public.committed_rows select generate_series(1, 1000)")
        os.kill(server.running_pid(), signal.SIGKILL)
        for _ in range(100):
            if server.running_pid() is None:
                break
            time.sleep(0.1)
        target = server.start()
        with psycopg.connect(target.url) as conn:
            assert conn.execute("select count(*) from public.committed_rows").fetchone()[0] == 1000
    finally:
        server.stop()


def test_a_file_written_atomically_is_whole_or_untouched(tmp_path):
    out = tmp_path / "report.html"
    out.write_text("previous report")
    with pytest.raises(RuntimeError), replaced_atomically(out) as (partial,):
        partial.write_text("half a rep")
        raise RuntimeError("killed")
    assert out.read_text() == "previous report"
    assert list(tmp_path.iterdir()) == [out]
    with replaced_atomically(out) as (partial,):
        partial.write_text("new report")
    assert out.read_text() == "new report" and list(tmp_path.iterdir()) == [out]
