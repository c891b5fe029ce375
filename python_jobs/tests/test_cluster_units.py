"""Pure functions of the clustering job: matching, naming, selection, rules, and fitting on a sample."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest

from insiders.cluster import candidates as grid
from insiders.cluster import model as segment_model
from insiders.cluster.candidates import Candidate, run_grid, sample_rows
from insiders.cluster.config import ClusterConfig
from insiders.cluster.features import feature_matrix, make_preprocessor
from insiders.cluster.identity import match_segments
from insiders.cluster.job import fit_model
from insiders.cluster.model import sampled_tsne
from insiders.cluster.naming import TOP_SEGMENT, name_segments, profile_segments, top_segment
from insiders.cluster.rules import insider_rules
from insiders.cluster.select import select
from insiders.warehouse import run_tables

from .test_scale import synthetic_features

AS_OF = date(2011, 12, 9)


def test_matching_keeps_ids_of_unchanged_profiles_and_gives_new_ones_otherwise():
    previous = {1: np.array([5.0, 2.0]), 2: np.array([1.0, 0.0]), 3: np.array([3.0, 3.0])}
    new = {0: np.array([1.05, 0.0]), 1: np.array([5.0, 2.1]), 2: np.array([9.0, 9.0])}
    mapping = match_segments(new, previous, spread=np.array([1.0, 1.0]), max_distance=0.5, order=[1, 0, 2])
    assert mapping == {0: 2, 1: 1, 2: 4}


def test_first_fit_numbers_segments_in_the_given_order():
    new = {0: np.zeros(2), 1: np.ones(2), 2: np.full(2, 2.0)}
    assert match_segments(new, {}, np.ones(2), 1.0, order=[2, 0, 1]) == {2: 1, 0: 2, 1: 3}


def _customers() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for label, n, revenue, invoices, recency, returned in [
        (0, 10, 20_000, 30, 5, 0), (1, 40, 800, 4, 20, 0), (2, 30, 300, 1, 100, 0), (3, 20, 500, 3, 300, 0),
        (4, 10, 900, 5, 30, 60),
    ]:
        for _ in range(n):
            rows.append({"label": label, "gross_revenue": revenue * rng.uniform(0.9, 1.1), "net_revenue": revenue,
                         "n_invoices": invoices, "recency_days": recency, "tenure_days": 360, "avg_ticket": 50,
                         "return_rate": returned / 100, "n_items": 100, "n_returned_items": returned})
    return pd.DataFrame(rows)


def test_names_follow_the_documented_rules():
    customers = _customers()
    profiles = profile_segments(customers, customers["label"].to_numpy())
    assert top_segment(profiles) == 0
    assert name_segments(profiles, customers) == {0: TOP_SEGMENT, 1: "Loyal regulars", 2: "One-off buyers",
                                                  3: "Hibernating", 4: "Big returners"}


def test_segments_of_the_same_rule_get_distinct_names_that_say_what_differs():
    customers = _customers()
    lapsed_big = customers["label"] == 3
    customers.loc[lapsed_big.to_numpy().nonzero()[0][:10], "label"] = 5
    customers.loc[customers["label"] == 5, "gross_revenue"] = 5_000  # hibernating, but ten times the spend
    profiles = profile_segments(customers, customers["label"].to_numpy())
    names = name_segments(profiles, customers)
    assert names[5] == "Hibernating, higher spend" and names[3] == "Hibernating, lower spend"
    assert len(set(names.values())) == len(names)


def _candidate(k, ch, stability=0.9, smallest=0.05) -> Candidate:
    return Candidate("scaled", "kmeans", k, n_clusters=k, smallest_share=smallest, silhouette=0.3,
                     calinski_harabasz=ch, stability=stability)


def test_selection_takes_the_best_eligible_calinski_harabasz_and_records_the_binding_limit():
    candidates = [_candidate(2, 9_000), _candidate(4, 2_000), _candidate(5, 2_500, stability=0.5),
                  _candidate(7, 2_300, smallest=0.001), _candidate(8, 2_100)]
    selection = select(candidates, ClusterConfig())
    assert (selection.best.k, selection.relaxed) == (8, [])
    assert selection.binding == ["segments"]  # k=2 scored best and only the 4-8 segments limit stopped it
    reasons = {c.k: c.rejection for c in candidates}
    assert "outside 4-8" in reasons[2] and "stability" in reasons[5] and "smallest segment" in reasons[7]
    assert reasons[8] == "" and reasons[4] == ""


def test_selection_relaxes_limits_in_order_and_never_stops_the_run():
    unstable = select([_candidate(4, 2_000, stability=0.2), _candidate(5, 2_500, stability=0.3)], ClusterConfig())
    assert (unstable.best.k, unstable.relaxed) == (5, ["stability"])
    too_few = select([_candidate(2, 3_000), _candidate(3, 2_000, smallest=0.001)], ClusterConfig())
    assert too_few.best.k == 2 and too_few.relaxed == ["segments", "noise", "min_segment_share", "stability"]


def test_insider_rules_read_as_thresholds_on_mart_columns():
    rng = np.random.default_rng(1)
    n = 400
    features = pd.DataFrame({c: rng.uniform(0, 10, n) for c in ClusterConfig().rule_features})
    features["n_invoices"] = rng.integers(1, 20, n)
    is_insider = (features["n_invoices"] >= 12).to_numpy()
    rules, accuracy = insider_rules(features, is_insider, ClusterConfig())
    assert accuracy == 1.0
    assert rules[0].text == "n_invoices >= 12" and rules[0].precision == 1.0 and rules[0].recall == 1.0


# -- fitting on a sample above ClusterConfig.fit_sample customers -----------------------------------------------------

def test_the_fit_sample_is_stratified_by_spend_and_deterministic():
    revenue = np.random.default_rng(0).lognormal(5, 2, 5_000)
    rows = sample_rows(revenue, 1_000, seed=1)
    assert len(rows) == 1_000 and (np.diff(rows) > 0).all()  # sorted, no customer twice
    assert np.array_equal(rows, sample_rows(revenue, 1_000, seed=1))
    assert not np.array_equal(rows, sample_rows(revenue, 1_000, seed=2))
    # 50 strata of 100 customers ranked by spend, 20 sampled from each: the top 2% keep exactly their share
    stratum = np.empty(len(revenue), dtype=int)
    stratum[np.argsort(revenue, kind="stable")] = np.arange(len(revenue)) // 100
    assert (np.bincount(stratum[rows]) == 20).all()
    assert sample_rows(revenue, 5_000, seed=1) is None  # no more customers than the sample: everyone, as before
    uneven = sample_rows(revenue[:4_321], 1_234, seed=1)
    assert len(uneven) == 1_234 and len(np.unique(uneven)) == 1_234


def test_below_the_fit_sample_the_fit_is_the_one_before_sampling_existed():
    """Figures from the code before the sample (ClusterConfig had no fit_sample): same winner, same segments."""
    features = synthetic_features(2_000, seed=3)
    for config, winner, sizes in [
        (ClusterConfig(), "scaled/kmeans/k=5", [105, 174, 524, 592, 605]),
        (ClusterConfig(algorithms=("gmm", "dbscan", "hdbscan"), embeddings=("pca",)), "pca/hdbscan",
         [102, 105, 152, 174, 460, 498, 509]),
    ]:
        model, candidates, selection = fit_model(features, config, AS_OF, previous=None)
        counts = np.unique(model.assign(features).segment_id, return_counts=True)[1]
        assert (model.candidate_id, sorted(counts.tolist())) == (winner, sizes)
        assert {(c.n_customers, c.sample_size) for c in candidates} == {(2_000, 2_000)}
        assert selection.as_dict()["fit_sample"] == {"n_customers": 2_000, "fitted_on": 2_000, "sampled": False}


def test_above_the_fit_sample_every_candidate_fits_the_sample_and_labels_everyone():
    features = synthetic_features(3_000, seed=4)
    config = ClusterConfig(algorithms=("kmeans", "gmm", "ward", "dbscan", "hdbscan"), embeddings=("scaled", "pca"),
                           k_min=4, k_max=6, fit_sample=600)
    scaled = make_preprocessor().fit_transform(feature_matrix(features, config.features))
    revenue = features["gross_revenue"].to_numpy()
    rows = sample_rows(revenue, config.fit_sample, config.seed)
    others = np.setdiff1d(np.arange(len(features)), rows)
    seen = set()
    for candidate, fitted, embedding in run_grid(scaled, revenue, config):
        seen.add(candidate.algorithm)
        assert (candidate.n_customers, candidate.sample_size) == (3_000, 600)
        assert len(fitted.labels) == 3_000
        assert (fitted.labels[others] >= 0).all()  # noise is what the fit said of sampled customers only
        if candidate.algorithm in ("kmeans", "gmm"):  # the estimator places the others
            points = grid.embed(embedding, scaled[others])
            assert np.array_equal(fitted.labels[others], fitted.model.predict(points))
        elif candidate.n_clusters:  # the nearest centroid of the sample's segments places the others
            points, sample_points = grid.embed(embedding, scaled[others]), grid.embed(embedding, scaled[rows])
            found = np.unique(fitted.labels[rows][fitted.labels[rows] >= 0])
            centroids = np.array([sample_points[fitted.labels[rows] == label].mean(axis=0) for label in found])
            assert np.array_equal(fitted.labels[others], found[grid.centroid_distances(points, centroids).argmin(1)])
    assert seen == set(config.algorithms)

    model, _, selection = fit_model(features, replace(config, algorithms=("kmeans", "ward")), AS_OF, None)
    assignment = model.assign(features)
    assert len(assignment.segment_id) == 3_000 and set(assignment.segment_id) == {s.segment_id for s in model.segments}
    assert selection.as_dict()["fit_sample"] == {"n_customers": 3_000, "fitted_on": 600, "sampled": True}


def test_blocks_do_not_change_assignments(monkeypatch):
    features = synthetic_features(1_500, seed=5)
    for config in (ClusterConfig(k_min=4, k_max=6), ClusterConfig(algorithms=("gmm",), embeddings=("pca",),
                                                                  k_min=4, k_max=6)):
        model, _, _ = fit_model(features, config, AS_OF, previous=None)
        whole = model.assign(features)
        monkeypatch.setattr(grid, "BATCH_ROWS", 97)
        monkeypatch.setattr(segment_model, "BATCH_ROWS", 97)
        blocks = model.assign(features)
        monkeypatch.undo()
        assert np.array_equal(whole.segment_id, blocks.segment_id)
        for name in ("confidence", "distance", "map_xy"):
            np.testing.assert_allclose(getattr(whole, name), getattr(blocks, name), rtol=1e-12, atol=1e-12)


def test_sampled_tsne_maps_everyone_from_a_sample():
    features = synthetic_features(700, seed=6)
    scaled = make_preprocessor().fit_transform(feature_matrix(features, ClusterConfig().features))
    revenue = features["gross_revenue"].to_numpy()
    xy = sampled_tsne(scaled, revenue, seed=1, max_points=250)
    rows = sample_rows(revenue, 250, 1)
    others = np.setdiff1d(np.arange(700), rows)
    assert xy.shape == (700, 2) and np.isfinite(xy).all()
    # the others sit among their sampled neighbours
    assert (xy[others].min(axis=0) >= xy[rows].min(axis=0)).all()
    assert (xy[others].max(axis=0) <= xy[rows].max(axis=0)).all()


def test_the_spark_scorer_places_each_batch_as_the_job_places_the_whole_mart():
    """What Spark's pandas UDF returns for the mart's rows in Arrow batches (decimals as Decimal objects) is what
    the job computes on PostgreSQL's rows read whole: per customer, whatever the batches."""
    from decimal import Decimal

    from insiders.spark_warehouse import as_read, segment_scorer

    config = ClusterConfig(k_min=4, k_max=6)
    features = synthetic_features(1_500, seed=7)
    columns = ["customer_id", *config.features]
    mart = features[columns].copy()
    for name in config.features:  # numeric(18, 2) in the mart: Arrow hands Spark's decimals to pandas as Decimals
        mart[name] = [Decimal(f"{value:.2f}") for value in mart[name]]
    model, _, _ = fit_model(features, config, AS_OF, previous=None)
    read = as_read(mart)
    whole = model.assign(read)
    batches = [mart.iloc[start:start + 97] for start in range(0, len(mart), 97)]
    scored = pd.concat(segment_scorer(model)(iter([*batches, mart.iloc[:0]])), ignore_index=True)
    assert scored["customer_id"].tolist() == read["customer_id"].tolist()
    assert np.array_equal(scored["segment_id"].to_numpy(), whole.segment_id)
    for name, expected in (("confidence", whole.confidence), ("distance", whole.distance),
                           ("map_x", whole.map_xy[:, 0]), ("map_y", whole.map_xy[:, 1])):
        # the same arithmetic per row; only the blocks' sizes differ (see test_blocks_do_not_change_assignments)
        np.testing.assert_allclose(scored[name].to_numpy(), expected, rtol=1e-12, atol=1e-12)


def test_a_run_writes_only_rows_of_its_own_run():
    """The label tables have no foreign key to their run: the rows are held to it as they are written."""

    def tables(segment_run: str) -> dict:
        segments = pd.DataFrame({"customer_id": [1, 2], "run_id": ["r1", segment_run]})
        forecasts = pd.DataFrame({"customer_id": [1, 2], "run_id": ["r1", "r1"]})
        return run_tables({"run_id": "r1"}, selection=None, definitions=None, segments=segments,
                          rules=pd.DataFrame(), forecasts=forecasts, hypotheses=pd.DataFrame())

    assert list(tables("r1")) == ["model_runs", "customer_segments", "customer_forecasts", "hypothesis_tests",
                                  "insider_rules"]
    with pytest.raises(ValueError, match="customer_segments: rows of another run than r1"):
        tables("r0")
