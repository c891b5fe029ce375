"""What a BI user sees, on the demo data labelled at two as-of dates: descriptions in PostgreSQL's comments, the
latest_* views, the relationships to dim_customers, the exposures, and the report over time."""

from __future__ import annotations

import html
import json
import re
from datetime import date

import psycopg
import pytest

from insiders.backfill import backfill
from insiders.dbt_runner import run_dbt
from insiders.report import write_report
from insiders.roles import create_roles
from insiders.stages import build_marts

from .support import QUICK_PROGRAM, render_in_chromium

FIRST, LATEST = date(2011, 10, 31), date(2011, 12, 9)
METABASE_URL = "https://metabase.example.org/dashboard/42"


@pytest.fixture(scope="module")
def two_dates(new_database, demo_template, test_paths):
    """The demo data labelled at two as-of dates (the features are built in the template), marts built."""
    target = new_database(template=demo_template)
    backfill(test_paths, target, [FIRST, LATEST], program=QUICK_PROGRAM)
    return target


@pytest.fixture(scope="module")
def manifest(two_dates, test_paths) -> dict:
    """dbt's manifest (descriptions with `{{ doc() }}` rendered), parsed with the Metabase URL set."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INSIDERS_METABASE_URL", METABASE_URL)
        run_dbt(test_paths, two_dates, ["parse"], quiet=True)
    return json.loads((test_paths.state_dir / "dbt-target" / "manifest.json").read_text())


def query(target, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(target.url) as conn:
        return conn.execute(sql, params).fetchall()


def models(manifest: dict) -> dict[str, dict]:
    return {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}


def test_every_description_is_a_postgres_comment(two_dates, manifest):
    nodes = models(manifest)
    marts = {name for name, node in nodes.items() if node["schema"] == "marts"}
    assert {"fct_segment_summary", "dim_customers", "rpt_insiders", "rpt_data_quality", "latest_segment_summary",
            "latest_customer_segments"} <= marts
    with psycopg.connect(two_dates.url) as conn:
        for name, node in nodes.items():
            relation = conn.execute("select to_regclass(%s)::oid", (f"{node['schema']}.{node['alias']}",)).fetchone()[0]
            assert relation is not None, f"{name} was not built"
            assert node["description"].strip(), f"{name} has no description"
            comment = conn.execute("select obj_description(%s, 'pg_class')", (relation,)).fetchone()[0]
            assert comment == node["description"], f"{name}: the table's comment is not its description"
            columns = conn.execute("select attname, col_description(attrelid, attnum) from pg_attribute"
                                   " where attrelid = %s and attnum > 0 and not attisdropped order by attnum",
                                   (relation,)).fetchall()
            assert {column for column, _ in columns} == set(node["columns"]), f"{name}: columns differ from YAML"
            for column, comment in columns:
                expected = node["columns"][column]["description"]
                assert expected.strip() and "{{" not in expected, f"{name}.{column} is not described"
                assert comment == expected, f"{name}.{column}: the column's comment is not its description"


def test_shared_terms_have_one_wording(manifest):
    """A column that means the same in several models reads the same {% docs %} block."""
    nodes = models(manifest)
    for column in ("customer_id", "gross_revenue", "net_revenue", "is_insider", "expected_revenue_90d", "segment_id"):
        customer_level = {node["columns"][column]["description"] for name, node in nodes.items()
                          if column in node["columns"] and name in {"fct_customer_features", "fct_customer_segments",
                                                                    "dim_customers", "rpt_insiders",
                                                                    "latest_customer_segments"}}
        assert len(customer_level) == 1, f"{column} is worded {len(customer_level)} ways"
    as_of = {nodes[name]["columns"]["as_of_date"]["description"]
             for name in ("fct_customer_features", "fct_customer_segments", "fct_segment_summary", "rpt_hypotheses")}
    assert len(as_of) == 1


def test_customer_columns_point_to_dim_customers_for_metabase(manifest):
    nodes = models(manifest)
    referencing = {"fct_customer_features", "fct_customer_daily_sales", "fct_customer_segments",
                   "fct_segment_memberships", "rpt_insiders", "rpt_insider_changes", "latest_customer_segments"}
    tested = {node["attached_node"].split(".")[-1] for node in manifest["nodes"].values()
              if node["resource_type"] == "test" and node.get("test_metadata", {}).get("name") == "relationships"
              and node["test_metadata"]["kwargs"]["field"] == "customer_id"
              and "model.insiders.dim_customers" in node["depends_on"]["nodes"]}
    assert referencing <= tested
    for name in referencing:
        assert nodes[name]["columns"]["customer_id"]["meta"] == {
            "metabase.semantic_type": "type/FK", "metabase.fk_target_table": "marts.dim_customers",
            "metabase.fk_target_field": "customer_id"}, name
    assert nodes["dim_customers"]["columns"]["customer_id"]["meta"] == {"metabase.semantic_type": "type/PK"}


def test_exposures_url_and_lineage(manifest):
    exposures = {e["name"]: e for e in manifest["exposures"].values()}
    dashboard = exposures["metabase_insiders_dashboard"]
    assert dashboard["url"] == METABASE_URL  # rendered from INSIDERS_METABASE_URL
    assert {"model.insiders.latest_segment_summary", "model.insiders.rpt_insiders",
            "model.insiders.rpt_insider_changes"} <= set(dashboard["depends_on"]["nodes"])
    # sources -> marts -> the ML job: the marts the labelling job reads (insiders/warehouse.py)
    job = exposures["insiders_clustering_job"]
    assert job["type"] == "ml"
    assert {"model.insiders.fct_customer_features", "model.insiders.fct_customer_daily_sales"} <= set(
        job["depends_on"]["nodes"])
    assert exposures["insiders_backtest_job"]["type"] == "ml"
    # ml sources -> marts -> the dashboard
    parents = manifest["parent_map"]
    assert "source.insiders.ml.customer_segments" in parents["model.insiders.stg_ml__customer_segments"]
    assert "model.insiders.fct_customer_segments" in parents["model.insiders.latest_customer_segments"]


def test_latest_views_hold_the_current_date_only(two_dates):
    kinds = dict(query(two_dates, "select relname, relkind from pg_class join pg_namespace on relnamespace ="
                                  " pg_namespace.oid where nspname = 'marts' and starts_with(relname, 'latest_')"))
    assert kinds == {"latest_segment_summary": "v", "latest_customer_segments": "v"}
    assert query(two_dates, "select distinct as_of_date from marts.latest_segment_summary") == [(LATEST,)]
    assert query(two_dates, "select * from marts.latest_segment_summary order by segment_id") == query(
        two_dates, "select * from marts.fct_segment_summary where as_of_date = %s order by segment_id", (LATEST,))
    assert query(two_dates, "select count(*), count(distinct customer_id), min(as_of_date), max(as_of_date)"
                            " from marts.latest_customer_segments") == query(
        two_dates, "select count(*), count(*), %s::date, %s::date from marts.dim_customers", (LATEST, LATEST))


# rpt_insider_changes still compares the latest two dates labelled, whatever the as-of date (issue 11): its
# relationships test catches it. The fix is on the branch sqlfix; once merged this passes: drop the marker.
def test_an_earlier_as_of_date_moves_the_latest_views_and_the_relationships_hold(
        new_database, two_dates, test_paths, monkeypatch):
    target = new_database(template=two_dates.dbname)
    newcomers = query(target, "select count(*) from marts.fct_customer_segments as later where as_of_date = %s"
                              " and not exists (select 1 from marts.fct_customer_segments as earlier"
                              " where earlier.as_of_date = %s and earlier.customer_id = later.customer_id)",
                      (LATEST, FIRST))[0][0]
    assert newcomers > 0  # customers of the later date that the earlier dim_customers cannot hold
    monkeypatch.setenv("INSIDERS_ANALYST_PASSWORD", "analyst-secret")
    monkeypatch.setenv("INSIDERS_BI_PASSWORD", "bi-secret")
    create_roles(target)
    # the relationships tests run in this build and fail it if a customer_id has no dim_customers row
    build_marts(test_paths, target, FIRST)
    assert query(target, "select distinct as_of_date from marts.dim_customers") == [(FIRST,)]
    assert query(target, "select distinct as_of_date from marts.latest_segment_summary") == [(FIRST,)]
    assert query(target, "select distinct as_of_date from marts.latest_customer_segments") == [(FIRST,)]
    bi = target.url.replace(f"{target.user}:{target.password}@", "insiders_bi:bi-secret@")
    with psycopg.connect(bi) as conn:  # granted like the marts
        assert conn.execute("select count(*) from marts.latest_customer_segments").fetchone()[0] > 0
        assert conn.execute("select count(*) from marts.latest_segment_summary").fetchone()[0] > 0


def charts(page: str) -> list[str]:
    return [html.unescape(label) for label in re.findall(r'<svg class="chart"[^>]*aria-label="([^"]*)"', page)]


def test_report_shows_sizes_and_revenue_over_time(two_dates, tmp_path):
    with psycopg.connect(two_dates.url) as conn:
        report = write_report(conn, tmp_path / "report.html")
    page = report.read_text()
    assert "history-empty" not in page
    assert {"customers per segment by as-of date", "share of gross revenue per segment by as-of date",
            "Insiders' share of revenue by as-of date"} <= set(charts(page))
    dom, log = render_in_chromium(report, tmp_path)
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-rendered="ok"' in body and 'data-charts="6"' in body
    assert "Uncaught" not in log


def test_report_with_one_date_says_so_instead_of_drawing_one_dot(two_dates, tmp_path):
    with psycopg.connect(two_dates.url) as conn:  # as of the first date, when it was the only one
        report = write_report(conn, tmp_path / "report.html", as_of=FIRST)
    page = report.read_text()
    assert "id='history-empty'" in page and "One as-of date so far" in page
    assert not any("by as-of date" in label for label in charts(page))
    dom, _ = render_in_chromium(report, tmp_path)
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-rendered="ok"' in body and 'data-charts="2"' in body  # the share bars and the map
