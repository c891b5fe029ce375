"""dbt targets name the schemas: the production target writes raw, marts, ml, …; any other target writes the same
schemas prefixed with its name, in dbt and in the Python job alike."""

from __future__ import annotations

import psycopg
import pytest

from insiders.cli import main
from insiders.demo_data import generate
from insiders.errors import InsidersError
from insiders.roles import create_roles
from insiders.settings import PRODUCTION_TARGET, SCHEMA_ROLES, configured_target_name, schema_name

PIPELINE_SCHEMAS = set(SCHEMA_ROLES)


def test_production_schemas_keep_their_names_and_others_are_prefixed():
    assert schema_name("marts", PRODUCTION_TARGET) == "marts"
    assert schema_name("marts", "ci") == "ci_marts"


@pytest.mark.parametrize("name", ["CI", "1dev", "dev-x", "dev;drop", "a" * 40])
def test_a_target_name_that_cannot_prefix_a_schema_is_refused(monkeypatch, name):
    monkeypatch.setenv("INSIDERS_TARGET", name)
    with pytest.raises(InsidersError, match="INSIDERS_TARGET"):
        configured_target_name()


def test_a_ci_target_run_writes_only_prefixed_schemas(use_target, monkeypatch, tmp_path):
    demo = tmp_path / "small_demo.csv"
    generate(demo, n_lines=60_000, seed=7)
    monkeypatch.setenv("INSIDERS_TARGET", "ci")
    monkeypatch.setenv("INSIDERS_ANALYST_PASSWORD", "analyst-secret")
    monkeypatch.setenv("INSIDERS_BI_PASSWORD", "bi-secret")
    assert main(["run", "--input", str(demo)]) == 0
    with psycopg.connect(use_target.server_url) as conn:
        schemas = {row[0] for row in conn.execute("select nspname from pg_namespace")}
        assert {f"ci_{role}" for role in PIPELINE_SCHEMAS} <= schemas
        assert not PIPELINE_SCHEMAS & schemas, "a ci build wrote into production schemas"
        customers = conn.execute("select count(*) from ci_marts.fct_customer_features"
                                 " where as_of_date = (select max(as_of_date) from ci_marts.fct_customer_features)"
                                 ).fetchone()[0]
        labelled = conn.execute("select count(*) from ci_ml.customer_segments").fetchone()[0]
        assert customers > 0 and labelled == customers
        assert conn.execute("select count(*) from ci_marts.fct_segment_summary").fetchone()[0] > 0
    # the read-only roles get the target's marts, and nothing else
    from insiders import db
    from insiders.settings import Paths

    create_roles(db.resolve_target(Paths.resolve()))
    with psycopg.connect(use_target.server_url) as conn:
        can_use = conn.execute("select has_schema_privilege('insiders_analyst', 'ci_marts', 'usage'),"
                               " has_schema_privilege('insiders_analyst', 'ci_raw', 'usage')").fetchone()
        assert can_use == (True, False)
