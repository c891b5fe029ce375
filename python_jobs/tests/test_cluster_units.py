"""Pure functions of the clustering job: matching, naming, selection, rules."""

from __future__ import annotations

import numpy as np
import pandas as pd

from insiders.cluster.candidates import Candidate
from insiders.cluster.config import ClusterConfig
from insiders.cluster.identity import match_segments
from insiders.cluster.naming import TOP_SEGMENT, name_segments, profile_segments, top_segment
from insiders.cluster.rules import insider_rules
from insiders.cluster.select import select


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
