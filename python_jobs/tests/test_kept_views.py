"""PostgreSQL views kept from one build to the next while nothing they are made of changed (macros/kept_views.sql),
and built again when something did."""

from __future__ import annotations

import psycopg
import pytest

from insiders.dbt_runner import invoke_dbt

VIEW = "staging.stg_online_retail__load_batches"
BUILD = ["build", "--select", "stg_online_retail__load_batches", "--exclude", "resource_type:unit_test"]


def view_state(target) -> tuple[int | None, str | None]:
    with psycopg.connect(target.url) as conn:
        return conn.execute("select to_regclass(%s)::oid, pg_get_viewdef(to_regclass(%s))", (VIEW, VIEW)).fetchone()


def build(paths, target, *extra: str) -> str:
    """The build's message for the view: dbt's CREATE VIEW, or the kept view's SELECT 0."""
    result = invoke_dbt(paths, target, [*BUILD, *extra])
    [node] = [node for node in result.results if node.node.name == "stg_online_retail__load_batches"]
    return node.message


@pytest.fixture
def built_once(demo_mart, test_paths):
    build(test_paths, demo_mart)
    return demo_mart


def test_an_unchanged_view_is_kept(built_once, test_paths):
    before = view_state(built_once)
    assert build(test_paths, built_once) == "SELECT 0"
    assert view_state(built_once) == before


def test_a_dropped_view_is_built_again(built_once, test_paths):
    with psycopg.connect(built_once.url) as conn:
        conn.execute(f"drop view {VIEW}")
    assert build(test_paths, built_once).startswith("CREATE VIEW")
    assert view_state(built_once)[0] is not None


def test_a_view_replaced_by_hand_is_built_again(built_once, test_paths):
    oid, definition = view_state(built_once)
    with psycopg.connect(built_once.url) as conn:
        # the same oid and columns, another definition
        conn.execute(f"create or replace view {VIEW} as select * from ({definition.rstrip(';')}) as v where false")
    assert view_state(built_once)[0] == oid
    assert build(test_paths, built_once).startswith("CREATE VIEW")
    assert view_state(built_once)[1] == definition


def test_a_changed_project_builds_the_view_again(built_once, test_paths):
    # as if its SQL or its descriptions had changed: the fingerprint recorded is not this build's
    with psycopg.connect(built_once.url) as conn:
        conn.execute("update control.view_builds set fingerprint = 'an earlier version' where view_name = %s",
                     ('"staging"."stg_online_retail__load_batches"',))
        assert conn.execute("select count(*) from control.view_builds where fingerprint = 'an earlier version'"
                            ).fetchone()[0] == 1
    assert build(test_paths, built_once).startswith("CREATE VIEW")
    assert build(test_paths, built_once) == "SELECT 0"


def test_a_full_refresh_builds_every_view_again(built_once, test_paths):
    oid, _ = view_state(built_once)
    assert build(test_paths, built_once, "--full-refresh").startswith("CREATE VIEW")
    assert view_state(built_once)[0] != oid


def test_a_view_whose_sql_changed_is_built_again(built_once, test_paths):
    # --empty compiles every ref and source into an empty subquery: other SQL, the same everything else
    assert build(test_paths, built_once, "--empty").startswith("CREATE VIEW")
    assert build(test_paths, built_once).startswith("CREATE VIEW")
    assert build(test_paths, built_once) == "SELECT 0"
