"""Point in time: what is dated D (features, segments, forecasts, the Insiders, the model behind them) uses lines
up to D only, so appending later lines and running again leaves every earlier date as it was."""

from __future__ import annotations

from datetime import date

import pandas as pd
import psycopg
import pytest

from insiders.cli import main
from insiders.demo_data import generate

EARLY_END = date(2011, 9, 30)
# every column that describes a customer at a date, not the run that wrote it
SNAPSHOTS = {
    "features": "select * from marts.fct_customer_features where as_of_date = %s",
    "segments": "select customer_id, segment_id, segment_name, is_insider, program_rank, confidence,"
                " distance_to_centroid, map_x, map_y from ml.customer_segments where as_of_date = %s",
    "forecasts": "select customer_id, p_alive, expected_purchases_90d, expected_revenue_90d, expected_revenue_365d"
                 " from ml.customer_forecasts where as_of_date = %s",
    "hypotheses": "select hypothesis_id, insiders_value, insiders_value_low, insiders_value_high, compared_with,"
                  " p_value, holds from ml.hypothesis_tests where as_of_date = %s",
    "choice": "select insider_definition, data_cutoff_date, program->'evidence' from ml.model_runs"
              " where as_of_date = %s order by created_at desc limit 1",
}


@pytest.fixture(scope="module")
def split_files(tmp_path_factory) -> tuple:
    """Synthetic lines cut in two at the end of September: what a shop had then, and what came after."""
    folder = tmp_path_factory.mktemp("pit")
    whole = folder / "lines.csv"
    generate(whole, n_lines=150_000, seed=7)
    lines = pd.read_csv(whole, dtype=str)
    day = pd.to_datetime(lines["InvoiceDate"], format="%m/%d/%Y %H:%M").dt.date
    early, late = folder / "until_september.csv", folder / "after_september.csv"
    lines[day <= EARLY_END].to_csv(early, index=False)
    lines[day > EARLY_END].to_csv(late, index=False)
    return early, late


def snapshot(url: str, as_of: date) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {name: sorted(conn.execute(query, (as_of,)).fetchall(), key=str) for name, query in SNAPSHOTS.items()}


def test_later_lines_leave_earlier_dates_unchanged(use_target, split_files):
    early, late = split_files
    assert main(["run", "--input", str(early)]) == 0
    before = snapshot(use_target.url, EARLY_END)
    assert all(before.values()), "the early run wrote every table"

    assert main(["run", "--input", str(late)]) == 0  # the shop's next months arrive, labelled as of 2011-12-09
    assert main(["cluster", "--as-of", EARLY_END.isoformat()]) == 0  # and September is labelled again
    assert main(["backfill", "--from", "2011-09-30", "--to", "2011-12-09", "--monthly"]) == 0
    assert snapshot(use_target.url, EARLY_END) == before

    with psycopg.connect(use_target.url) as conn:
        later_models = conn.execute(
            "select count(*) from ml.model_runs where data_cutoff_date > as_of_date").fetchone()[0]
        assert later_models == 0
        dates = [row[0] for row in conn.execute(
            "select distinct as_of_date from ml.customer_segments order by 1").fetchall()]
        assert dates == [date(2011, 9, 30), date(2011, 10, 31), date(2011, 11, 30), date(2011, 12, 9)]
        fits = conn.execute("select data_cutoff_date from ml.model_runs where mode = 'fit'").fetchall()
        assert fits == [(EARLY_END,)]  # fitted at the first date; two months later the refit policy has not fired
