"""When the in-process parse writes dbt's manifest: only when it may differ from the one on disk; a build's nodes
share each thread's connection, reset between them."""

from __future__ import annotations

import os
import uuid

import dbt.parser.manifest
import psycopg2
import psycopg2.errors
import pytest

from insiders import dbt_runner
from insiders.dbt_runner import invoke_dbt, reset_session, write_manifest
from insiders.errors import InsidersError


@pytest.fixture
def written(monkeypatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(dbt.parser.manifest, "write_manifest", lambda manifest, path: calls.append(path))
    return calls


def artifacts(target_path, *, manifest_age: int) -> None:
    """The saved parse, and the two JSON manifests written `manifest_age` seconds after it (before it if < 0)."""
    saved_parse = target_path / "partial_parse.msgpack"
    saved_parse.write_bytes(b"")
    for name in ("manifest.json", "semantic_manifest.json"):
        (target_path / name).write_text("{}")
        moment = saved_parse.stat().st_mtime + manifest_age
        os.utime(target_path / name, (moment, moment))


def test_an_unchanged_project_keeps_the_manifest_written_after_its_parse(tmp_path, written):
    artifacts(tmp_path, manifest_age=1)
    write_manifest(object(), tmp_path, unchanged=True)
    assert written == []


def test_a_changed_project_writes_the_manifest(tmp_path, written):
    artifacts(tmp_path, manifest_age=1)
    write_manifest(object(), tmp_path, unchanged=False)
    assert written == [str(tmp_path)]


def test_a_manifest_older_than_the_saved_parse_is_written_again(tmp_path, written):
    # a parse that saved its state and stopped before its manifest (or `dbt parse --no-write-json` by hand)
    artifacts(tmp_path, manifest_age=-5)
    write_manifest(object(), tmp_path, unchanged=True)
    assert written == [str(tmp_path)]


def test_a_missing_manifest_is_written(tmp_path, written):
    artifacts(tmp_path, manifest_age=1)
    (tmp_path / "semantic_manifest.json").unlink()
    write_manifest(object(), tmp_path, unchanged=True)
    assert written == [str(tmp_path)]


def test_a_manifest_that_cannot_be_written_is_a_clear_error(tmp_path, monkeypatch):
    def refuse(manifest, path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(dbt.parser.manifest, "write_manifest", refuse)
    with pytest.raises(InsidersError, match=r"cannot write dbt's manifest in .*: Permission denied"):
        write_manifest(object(), tmp_path, unchanged=False)


@pytest.fixture
def connects(monkeypatch) -> list[int]:
    """Every connection dbt-postgres opens, counted."""
    opened: list[int] = []
    connect = psycopg2.connect

    def counting_connect(*args, **kwargs):
        opened.append(1)
        return connect(*args, **kwargs)

    monkeypatch.setattr(psycopg2, "connect", counting_connect)
    return opened


def test_a_build_keeps_each_threads_connection_from_node_to_node(demo_mart, test_paths, connects, monkeypatch):
    resets: list[int] = []
    reset = dbt_runner.reset_session

    def counted_reset(handle, **kwargs) -> None:
        resets.append(1)
        reset(handle, **kwargs)

    monkeypatch.setattr(dbt_runner, "reset_session", counted_reset)
    # the invoice lines' staging views and their tests: about twenty nodes on dbt's two threads
    result = invoke_dbt(test_paths, demo_mart, ["build", "--select", "staging.online_retail",
                                                    "--exclude", "resource_type:unit_test"])
    nodes = [node for node in result.results if node.status in {"success", "pass"}]
    assert len(nodes) >= 10
    # one connection per thread of dbt's pool (two), and the few of its set-up (the hooks', the schemas' and the
    # relation cache's, on threads of their own); a connection per node before
    assert len(connects) <= 6, f"{len(connects)} connections for {len(nodes)} nodes"
    assert len(resets) >= len(nodes)  # each node's connection was reset for the next


def test_a_kept_connection_starts_the_next_node_as_a_new_session(target):
    handle = psycopg2.connect(target.url)
    try:
        with handle.cursor() as cursor:
            cursor.execute("select current_setting('search_path'), current_setting('work_mem')")
            new_session = cursor.fetchone()
            cursor.execute("create temporary table left_by_a_node (n int)")
            cursor.execute("set work_mem = '7MB'")
            cursor.execute("select pg_advisory_lock(424242)")
        handle.commit()
        with handle.cursor() as cursor, pytest.raises(psycopg2.errors.DivisionByZero):
            cursor.execute("select 1 / 0")  # a node that failed inside its transaction
        reset_session(handle)
        with handle.cursor() as cursor:
            cursor.execute("select current_setting('search_path'), current_setting('work_mem'),"
                           " to_regclass('pg_temp.left_by_a_node'),"
                           " (select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid())")
            assert cursor.fetchone() == (*new_session, None, 0)
    finally:
        handle.close()


def test_a_kept_connection_takes_the_profiles_role_again(target):
    role = f"kept_connection_{uuid.uuid4().hex[:8]}"
    handle = psycopg2.connect(target.url)
    handle.autocommit = True
    try:
        with handle.cursor() as cursor:
            cursor.execute(f"create role {role}")
            cursor.execute(f"grant {role} to current_user")
            cursor.execute(f"set role {role}")  # as dbt-postgres does on connecting, with a profile's role
        reset_session(handle, role=role)
        with handle.cursor() as cursor:
            cursor.execute("select current_role")
            assert cursor.fetchone()[0] == role
    finally:
        with handle.cursor() as cursor:
            cursor.execute("reset role")
            cursor.execute(f"drop role if exists {role}")
        handle.close()


def test_what_waits_for_a_node_is_called_once_when_dbt_starts_it(demo_mart, test_paths):
    started: list[str] = []
    result = invoke_dbt(test_paths, demo_mart, ["build", "--select", "staging.online_retail",
                                                    "--exclude", "resource_type:unit_test"],
                        on_node_start={"model.insiders.stg_online_retail__load_batches": lambda: started.append("x"),
                                       "model.insiders.not_in_this_build": lambda: started.append("never")})
    assert "stg_online_retail__load_batches" in {node.node.name for node in result.results}
    assert started == ["x"]
