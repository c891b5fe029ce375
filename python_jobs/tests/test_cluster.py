"""The clustering job against real databases: the demo mart (planted personas) and the real file."""

from __future__ import annotations

import pandas as pd
import psycopg
import pytest
from sklearn.metrics import adjusted_rand_score

from insiders.cluster.job import run_clustering
from insiders.cluster.naming import TOP_SEGMENT
from insiders.errors import InsidersError
from insiders.warehouse import PostgresWarehouse

from .support import QUICK_PROGRAM


def labels(target, as_of="2011-12-09") -> pd.DataFrame:
    with psycopg.connect(target.url) as conn:
        cur = conn.execute(
            "select customer_id, segment_id, segment_name, is_insider from ml.customer_segments"
            " where as_of_date = %s order by customer_id", (as_of,))
        return pd.DataFrame(cur.fetchall(), columns=["customer_id", "segment_id", "segment_name", "is_insider"])


def cluster(target, paths, **options):
    options.setdefault("program", QUICK_PROGRAM)
    with psycopg.connect(target.url) as conn:
        return run_clustering(PostgresWarehouse(conn), paths, **options)


def test_demo_segments_recover_the_planted_personas(demo_mart, test_paths, demo_files):
    result = cluster(demo_mart, test_paths)
    assert result.mode == "fit"
    segments = labels(demo_mart).merge(pd.read_csv(demo_files[1]), on="customer_id", how="left")
    assert segments["persona"].notna().all()
    assert adjusted_rand_score(segments["persona"], segments["segment_id"]) >= 0.8
    big_regulars = segments[segments["persona"] == "big_regular"]
    assert big_regulars["is_insider"].mean() >= 0.9
    assert segments.groupby("segment_id")["segment_name"].nunique().eq(1).all()
    names = segments.drop_duplicates("segment_id")["segment_name"]
    assert names.is_unique and (names == TOP_SEGMENT).sum() == 1
    assert segments["is_insider"].sum() == QUICK_PROGRAM.program_size(len(segments))


def test_same_input_same_labels(demo_mart, test_paths):
    cluster(demo_mart, test_paths, refit=True)
    first = labels(demo_mart)
    cluster(demo_mart, test_paths, refit=True)
    pd.testing.assert_frame_equal(first, labels(demo_mart))
    scored = cluster(demo_mart, test_paths)
    assert scored.mode == "score"
    pd.testing.assert_frame_equal(first, labels(demo_mart))


def test_one_row_per_customer_and_reruns_replace_only_their_date(demo_mart, test_paths):
    cluster(demo_mart, test_paths, as_of=pd.Timestamp("2011-09-30").date())
    cluster(demo_mart, test_paths, as_of=pd.Timestamp("2011-12-09").date())
    with psycopg.connect(demo_mart.url) as conn:
        # each date written is in the statistics at once: the marts read its rows by date next, and planned for
        # one row they took minutes at 90,000 customers
        for table in ("customer_segments", "customer_forecasts"):
            dates = conn.execute(
                "select most_common_vals::text from pg_stats where schemaname = 'ml' and tablename = %s"
                " and attname = 'as_of_date'", (table,)).fetchone()[0]
            assert set(dates.strip("{}").split(",")) == {"2011-09-30", "2011-12-09"}
    cluster(demo_mart, test_paths, as_of=pd.Timestamp("2011-09-30").date())
    with psycopg.connect(demo_mart.url) as conn:
        rows = dict(conn.execute(
            "select s.as_of_date::text, count(*) from ml.customer_segments as s group by 1").fetchall())
        mart = dict(conn.execute(
            "select as_of_date::text, count(*) from marts.fct_customer_features group by 1").fetchall())
        assert set(rows.items()) <= set(mart.items())
        runs = conn.execute("select mode, count(*) from ml.model_runs group by 1 order by 1").fetchall()
        assert runs == [("fit", 1), ("score", 2)]
        grid = conn.execute("select count(*), count(*) filter (where selected) from ml.model_selection").fetchone()
        assert grid[0] >= 20 and grid[1] == 1
        rules = conn.execute("select rule_text, precision, recall, tree_accuracy from ml.insider_rules"
                             " where as_of_date = '2011-12-09'").fetchall()
        assert rules and all(text and 0 <= p <= 1 and 0 <= r <= 1 and acc > 0.8 for text, p, r, acc in rules)


def test_a_later_date_keeps_ids_and_names_and_a_refit_carries_them_over(demo_mart, test_paths):
    fit = cluster(demo_mart, test_paths, as_of=pd.Timestamp("2011-10-31").date())
    october = fit.summary.set_index("segment_id")["segment_name"]
    later = cluster(demo_mart, test_paths)  # 2011-12-09, no refit
    assert later.mode == "score"
    assert later.summary.set_index("segment_id")["segment_name"].to_dict() == october.to_dict()
    # a refit on the same data finds the same profiles: every id and name carries over
    same = cluster(demo_mart, test_paths, as_of=pd.Timestamp("2011-10-31").date(), refit=True)
    assert same.summary.set_index("segment_id")["segment_name"].to_dict() == october.to_dict()
    # a refit six weeks later: the segments whose profile held keep their ids
    refit = cluster(demo_mart, test_paths, refit=True)
    carried = set(refit.summary["segment_id"]) & set(october.index)
    assert len(carried) >= len(october) - 1
    top = refit.summary[refit.summary["segment_name"] == TOP_SEGMENT]["segment_id"].item()
    assert october[top] == TOP_SEGMENT


def test_a_tampered_model_is_refused(demo_mart, test_paths):
    cluster(demo_mart, test_paths)
    with psycopg.connect(demo_mart.url) as conn:
        path = conn.execute("select artifact_path from ml.model_runs where mode = 'fit'").fetchone()[0]
    with open(path, "ab") as artifact:
        artifact.write(b"tampered")
    with pytest.raises(InsidersError, match="does not match its record"):
        cluster(demo_mart, test_paths)


def test_real_file_insiders_are_the_programs_size_and_reproducible(real_mart, test_paths):
    result = cluster(real_mart, test_paths)
    assert result.n_insiders == QUICK_PROGRAM.program_size(len(result.features))
    first = labels(real_mart)
    with psycopg.connect(real_mart.url) as conn:
        customers = conn.execute("select count(*) from marts.fct_customer_features"
                                 " where as_of_date = '2011-12-09'").fetchone()[0]
    assert len(first) == customers == first["customer_id"].nunique()
    cluster(real_mart, test_paths, refit=True)
    pd.testing.assert_frame_equal(first, labels(real_mart))


def test_tsne_map_is_a_picture_only(demo_mart, test_paths):
    from insiders.cluster.config import ClusterConfig

    cluster(demo_mart, test_paths)
    pca_map = query_map(demo_mart)
    cluster(demo_mart, test_paths, config=ClusterConfig(map_embedding="tsne"))
    tsne_map = query_map(demo_mart)
    assert (pca_map["segment_id"] == tsne_map["segment_id"]).all()  # segments do not depend on the picture
    assert not (pca_map["map_x"] == tsne_map["map_x"]).all()


def query_map(target) -> pd.DataFrame:
    with psycopg.connect(target.url) as conn:
        cur = conn.execute("select customer_id, segment_id, map_x, map_y from ml.customer_segments"
                           " where as_of_date = '2011-12-09' order by customer_id")
        return pd.DataFrame(cur.fetchall(), columns=["customer_id", "segment_id", "map_x", "map_y"])


def test_the_offered_algorithms_and_embeddings_run_and_are_recorded(demo_mart, test_paths):
    from insiders.cluster.config import ClusterConfig

    config = ClusterConfig(algorithms=("gmm", "dbscan", "hdbscan"), embeddings=("scaled", "pca"), k_max=6)
    result = cluster(demo_mart, test_paths, refit=True, config=config)
    assert result.mode == "fit" and result.n_insiders == QUICK_PROGRAM.program_size(len(result.features))
    with psycopg.connect(demo_mart.url) as conn:
        grid = conn.execute("select algorithm, embedding, k, selected from ml.model_selection").fetchall()
    assert {(a, e) for a, e, _, _ in grid} == {(a, e) for a in config.algorithms for e in config.embeddings}
    assert all(k is None for a, _, k, _ in grid if a in ("dbscan", "hdbscan"))
    assert sum(selected for *_, selected in grid) == 1
    scored = cluster(demo_mart, test_paths)  # the saved model, whichever algorithm won, scores again
    assert scored.mode == "score"


def test_rows_copied_as_text_blocks_read_back_as_written_one_at_a_time(conn, monkeypatch):
    """copy_rows' text blocks store what psycopg's row-at-a-time COPY stored: every double to the last bit (thirds,
    tiny and huge values, -0, infinities), NaN, None and <NA> as NULL, empty text as empty text, escapes, dates,
    booleans, nullable integers; and blocks are cut anywhere."""
    from datetime import date

    import numpy as np

    from insiders import warehouse

    rng = np.random.default_rng(0)
    n = 2_000
    values = rng.lognormal(0, 6, n) * rng.choice([-1.0, 1.0], n)
    values[:8] = [1 / 3, 0.1, -0.0, 5e-324, 1.7976931348623157e308, np.inf, -np.inf, np.nan]
    with np.errstate(over="ignore"):  # the largest double is an infinity in single precision
        small = values.astype(np.float32)
    texts = np.array(["plain", "", "tab\there", "new\nline", "back\\slash", "quote'\"", "comma,x", "ü"], dtype=object)
    frame = pd.DataFrame({
        "id": np.arange(n, dtype=np.int64) * 3_000_000_000,
        "value": values,
        "small": small,
        "flag": rng.random(n) < 0.5,
        "maybe": pd.array([None if i % 7 == 0 else i for i in range(n)], dtype="Int64"),
        "day": [date(2011, 12, 10) if i % 5 else None for i in range(n)],
        "label": [texts[i % len(texts)] if i % 11 else None for i in range(n)],
    })
    columns = ("id bigint, value double precision, small double precision, flag boolean, maybe integer, day date,"
               " label text")
    with conn.cursor() as cur:
        cur.execute(f"create temporary table by_block ({columns})")
        cur.execute(f"create temporary table by_row ({columns})")
        monkeypatch.setattr(warehouse, "COPY_BLOCK_ROWS", 333)
        warehouse.copy_rows(cur, "by_block", frame)
        with cur.copy(f"copy by_row ({', '.join(frame.columns)}) from stdin") as copy:
            for row in warehouse.without_missing(frame).itertuples(index=False, name=None):
                copy.write_row(row)
        assert cur.execute("select count(*) from by_block").fetchone()[0] == n
        for first, second in (("by_block", "by_row"), ("by_row", "by_block")):
            # text comparisons of the doubles: `except` would call -0 and 0 equal
            query = (f"select id, value::text, small::text, flag, maybe, day, label from {first} except "
                     f"select id, value::text, small::text, flag, maybe, day, label from {second}")
            assert cur.execute(query).fetchall() == []
        assert cur.execute("select count(*) from by_block where label = ''").fetchone()[0] > 0
        assert cur.execute("select count(*) from by_block where value is null").fetchone()[0] == 1
