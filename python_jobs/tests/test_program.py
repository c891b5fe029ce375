"""The Insiders program's pure parts: rankings, out-of-time measurement, the choice rule, the hypotheses."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from insiders.program import hypotheses, rankings
from insiders.program.choice import decide
from insiders.program.config import ProgramConfig
from insiders.program.cutoffs import inner_cutoffs, month_end_on_or_before, required_dates, training_cutoff
from insiders.program.evaluate import INTERVAL, measure_groups
from insiders.program.hypotheses import measure_hypotheses


def test_top_n_breaks_ties_by_gross_revenue_then_customer_id():
    score = np.array([1.0, 2.0, 2.0, 2.0])
    gross = np.array([9.0, 5.0, 7.0, 7.0])
    ids = np.array([1, 2, 4, 3])
    assert rankings.top_n(score, gross, ids, 2).tolist() == [False, False, True, True]
    assert rankings.ranks(score, gross, ids).tolist() == [4, 3, 2, 1]


def test_rfm_score_sums_three_quintile_scores_with_recent_buyers_scoring_high():
    features = pd.DataFrame({"recency_days": [1, 400, 50, 20, 10], "n_purchase_days": [9, 1, 2, 3, 4],
                             "gross_revenue": [900, 10, 20, 30, 40]})
    assert rankings.rfm_score(features).tolist() == [15, 3, 6, 9, 12]


def test_shares_lift_precision_and_paired_differences():
    future = np.array([50.0, 30.0, 10.0, 5.0, 5.0, 0.0, 0.0, 0.0, -4.0, 0.0])
    best = np.arange(10) < 2
    worst = np.arange(10) >= 8
    rows = measure_groups(future, {"insiders": best, "worst": worst}, reference="insiders", resamples=200).set_index(
        "rule")
    assert rows.loc["insiders", "future_revenue_share"] == pytest.approx(0.8)
    assert rows.loc["insiders", "lift"] == pytest.approx(4.0)
    assert rows.loc["worst", "future_revenue_share"] == pytest.approx(-0.04)  # returns count against a group
    assert rows.loc["insiders", "precision"] == rows.loc["insiders", "recall"] == 1.0
    assert rows.loc["worst", "precision"] == 0.0
    assert rows.loc["insiders", "share_difference_vs_insiders"] == 0.0
    assert rows.loc["worst", "share_difference_low"] > 0  # the best group beats the worst in every resample
    low, share, high = rows.loc["insiders", ["future_revenue_share_low", "future_revenue_share",
                                              "future_revenue_share_high"]]
    assert low <= share <= high


def test_a_random_group_has_lift_about_one():
    rng = np.random.default_rng(3)
    future = rng.gamma(0.5, 100.0, 20_000)
    random = rng.random(20_000) < 0.15
    row = measure_groups(future, {"random": random}, resamples=200).iloc[0]
    assert row["future_revenue_share_low"] <= row["customer_share"] <= row["future_revenue_share_high"]


def test_inner_cutoffs_are_month_ends_whose_horizons_end_by_the_as_of_date_and_need_history():
    config = ProgramConfig()
    assert inner_cutoffs(date(2011, 12, 9), date(2010, 12, 1), config) == [
        date(2011, 6, 30), date(2011, 7, 31), date(2011, 8, 31)]
    # every day of a month from the 29th on reads the same three: measured once, reused
    assert inner_cutoffs(date(2011, 11, 29), date(2010, 12, 1), config) == inner_cutoffs(
        date(2011, 12, 9), date(2010, 12, 1), config)
    assert inner_cutoffs(date(2011, 11, 30), date(2010, 12, 1), config)[-1] == date(2011, 8, 31)
    assert inner_cutoffs(date(2011, 6, 30), date(2010, 12, 1), config) == [date(2011, 3, 31)]
    assert inner_cutoffs(date(2011, 3, 31), date(2010, 12, 1), config) == []
    for as_of in (date(2011, 12, 9), date(2011, 2, 28) + timedelta(days=400), date(2012, 3, 1)):
        assert all(c + timedelta(days=config.horizon_days) <= as_of
                   for c in inner_cutoffs(as_of, date(2010, 12, 1), config))
    assert month_end_on_or_before(date(2012, 2, 29)) == date(2012, 2, 29)
    assert month_end_on_or_before(date(2012, 2, 28)) == date(2012, 1, 31)
    assert month_end_on_or_before(date(2011, 12, 31)) == date(2011, 12, 31)
    assert training_cutoff(date(2011, 3, 31), date(2010, 12, 1), config) is None
    days = required_dates(date(2011, 12, 9), date(2010, 12, 1), config)
    assert days == [date(2011, 3, 31), date(2011, 4, 30), date(2011, 5, 31), date(2011, 6, 30), date(2011, 7, 31),
                    date(2011, 8, 31), date(2011, 12, 9)]  # month-ends, shared with backfills, and the date itself


def _evidence(shares: dict[str, list[float]]) -> pd.DataFrame:
    cutoffs = [date(2011, 7, 12), date(2011, 8, 11), date(2011, 9, 10)]
    return pd.DataFrame([{"cutoff_date": c, "candidate": name, "future_revenue_share": values[i]}
                         for name, values in shares.items() for i, c in enumerate(cutoffs[: len(values)])])


def test_the_simple_rule_stays_unless_a_challenger_clearly_and_always_wins():
    config = ProgramConfig()
    close = _evidence({"top_past_revenue": [0.60, 0.62, 0.64], "rfm_score": [0.55, 0.56, 0.57],
                       "decayed_revenue": [0.605, 0.622, 0.642]})
    definition, reason = decide(close, config)
    assert definition == "top_past_revenue" and "no challenger" in reason
    clear = _evidence({"top_past_revenue": [0.60, 0.62, 0.64], "trained_model": [0.62, 0.63, 0.66]})
    assert decide(clear, config)[0] == "trained_model"
    one_loss = _evidence({"top_past_revenue": [0.60, 0.62, 0.64], "trained_model": [0.70, 0.70, 0.63]})
    assert decide(one_loss, config)[0] == "top_past_revenue"
    thin = _evidence({"top_past_revenue": [0.60, 0.62], "trained_model": [0.70, 0.70]})
    definition, reason = decide(thin, config)
    assert definition == "top_past_revenue" and "too few" in reason


def test_rfm_can_be_the_simple_rule_that_wins():
    evidence = _evidence({"top_past_revenue": [0.50, 0.50, 0.50], "rfm_score": [0.55, 0.56, 0.57]})
    assert decide(evidence, ProgramConfig())[0] == "rfm_score"


def _customers(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    insider = np.arange(n) < n // 5
    revenue = np.where(insider, rng.gamma(4, 1000, n), rng.gamma(2, 100, n))
    features = pd.DataFrame({"gross_revenue": revenue, "n_items": revenue / 2, "n_returned_items": revenue / 100,
                             "n_invoices": np.where(insider, 10, 5)})
    return features, insider


def test_hypotheses_compare_the_insiders_with_the_other_customers_with_intervals():
    features, insider = _customers()
    rows = measure_hypotheses(features, insider, resamples=300).set_index("hypothesis_id")
    assert list(rows.index) == ["H1", "H2", "H3", "H4", "H5", "H6"]
    assert rows.loc["H1", "holds"] and rows.loc["H4", "holds"] and rows.loc["H5", "holds"]
    assert rows.loc["H5", "p_value"] < 0.05
    # the same return rate on both sides: no difference to claim
    assert not rows.loc["H3", "holds"] and rows.loc["H3", "p_value"] > 0.05
    for hypothesis in rows.itertuples():
        assert hypothesis.insiders_value_low <= hypothesis.insiders_value <= hypothesis.insiders_value_high
    others = features[~insider]
    assert rows.loc["H5", "compared_with"] == pytest.approx(others["gross_revenue"].sum() / others["n_invoices"].sum())


def _hypotheses_by_definition(features: pd.DataFrame, insider: np.ndarray, resamples: int, seed: int,
                              ) -> dict[str, tuple[float, float, float | None]]:
    """Each hypothesis' interval and p-value as the module's docstring defines them, the slow way: every resample's
    customers gathered and measured, every permutation's labels from rng.permutation (the same draws in the same
    order: the resamples, then the permutations, each measured by H3, H4 and H5)."""
    revenue, items, returned, invoices = (features[c].to_numpy(dtype=float) for c in
                                          ("gross_revenue", "n_items", "n_returned_items", "n_invoices"))
    statistics = {"H1": hypotheses._share(revenue), "H2": hypotheses._share(items),
                  "H3_insiders": hypotheses._ratio(returned, items, True),
                  "H3_others": hypotheses._ratio(returned, items, False),
                  "H5_insiders": hypotheses._ratio(revenue, invoices, True),
                  "H5_others": hypotheses._ratio(revenue, invoices, False),
                  "H4": hypotheses._median_uplift(revenue), "H6": hypotheses._top_quartile_share(revenue)}
    rng, n, everyone = np.random.default_rng(seed), len(insider), np.arange(len(insider))
    drawn = np.array([[statistic(rows, insider) for statistic in statistics.values()]
                      for rows in (rng.integers(0, n, n) for _ in range(resamples))])
    intervals = {name: tuple(np.nanpercentile(drawn[:, j], INTERVAL)) for j, name in enumerate(statistics)}

    def difference(hid: str, sign: int):
        mine, theirs = statistics[f"{hid}_insiders"], statistics[f"{hid}_others"]
        return lambda rows, labels: sign * (mine(rows, labels) - theirs(rows, labels))

    tested = {"H3": difference("H3", -1), "H4": statistics["H4"], "H5": difference("H5", 1)}
    observed = {hid: statistic(everyone, insider) for hid, statistic in tested.items()}
    shuffles = [rng.permutation(insider) for _ in range(resamples)]
    p_values = {hid: float((1 + sum(statistic(everyone, labels) >= observed[hid] for labels in shuffles))
                           / (resamples + 1)) for hid, statistic in tested.items()}
    names = {"H3": "H3_insiders", "H5": "H5_insiders"}
    return {hid: (*intervals[names.get(hid, hid)], p_values.get(hid)) for hid in ("H1", "H2", "H3", "H4", "H5", "H6")}


@pytest.mark.parametrize("labelled", ["near the top", "at random"])
@pytest.mark.parametrize("n", [601, 602])
def test_the_hypotheses_fast_forms_give_the_definitions_intervals_and_p_values(n, labelled):
    """The bootstrap measured from draw counts and the permutations drawn as shuffled positions give the figures
    of the definition: the intervals to rounding, the p-values (counts of permutations) exactly; revenue with
    ties, both medians' parities. Labels at random give every difference p-values away from the extremes, so
    that each one's count of shuffles is compared, not only the first tested."""
    rng = np.random.default_rng(n)
    revenue = np.round(rng.gamma(0.8, 300, n), -1)
    features = pd.DataFrame({"gross_revenue": revenue, "n_items": rng.integers(1, 300, n),
                             "n_returned_items": rng.integers(0, 4, n), "n_invoices": rng.integers(1, 20, n)})
    if labelled == "near the top":
        insider = revenue >= np.quantile(revenue, 0.8)
        insider[rng.integers(0, n, 12)] ^= True  # not exactly the top, so the permutations can go either way
    else:
        insider = rng.random(n) < 0.2
    rows = measure_hypotheses(features, insider, resamples=150, seed=3).set_index("hypothesis_id")
    for hid, (low, high, p_value) in _hypotheses_by_definition(features, insider, 150, 3).items():
        assert rows.loc[hid, "insiders_value_low"] == pytest.approx(low, rel=1e-12), hid
        assert rows.loc[hid, "insiders_value_high"] == pytest.approx(high, rel=1e-12), hid
        assert (rows.loc[hid, "p_value"] if p_value is not None else None) == p_value, hid


def test_shuffled_positions_are_the_generators_permutation_draw_for_draw():
    insider = np.random.default_rng(0).random(1_001) < 0.15
    fast, slow = np.random.default_rng(8), np.random.default_rng(8)
    for _ in range(5):
        assert np.array_equal(hypotheses._shuffled(insider, fast), slow.permutation(insider))
    assert fast.integers(0, 2**62) == slow.integers(0, 2**62)  # the same state after


def test_the_median_uplift_from_one_sort_is_np_medians():
    rng = np.random.default_rng(4)
    for n in (1, 2, 7, 40, 41):
        values = np.round(rng.gamma(1, 50, n), -1)  # ties
        from_sort, by_definition = hypotheses._sorted_median_uplift(values), hypotheses._median_uplift(values)
        for share in (0.0, 0.3, 0.5, 1.0):
            labels = rng.random(n) < share
            expected = by_definition(np.arange(n), labels) if labels.any() else np.nan
            assert from_sort(labels) == pytest.approx(expected, rel=0, abs=0, nan_ok=True), (n, share)


def test_a_resample_where_nobody_spent_has_no_share_instead_of_a_huge_one():
    future = np.array([0.0] * 7 + [100.0])
    rows = measure_groups(future, {"insiders": np.arange(8) == 7, "other": np.arange(8) == 0}, reference="insiders",
                          resamples=300)
    assert rows["future_revenue_share_low"].between(-1, 1).all() and rows["share_difference_low"].between(-1, 1).all()


def test_a_shop_without_repeat_purchases_still_gets_a_forecast():
    from insiders.forecast.job import forecast_customers

    features = pd.DataFrame({"customer_id": [1, 2, 3], "clv_frequency": [0, 0, 0], "clv_recency": [0, 0, 0],
                             "clv_t": [10, 20, 30], "clv_monetary": [0.0, 0.0, 0.0], "gross_revenue": [30.0, 60, 90],
                             "n_purchase_days": [1, 1, 1]})
    forecast = forecast_customers(features)
    assert "not_fitted" in forecast.estimates["gamma_gamma"]
    assert (forecast.customers["expected_revenue_90d"] >= 0).all()
    same_day = features.assign(clv_t=0)
    assert (forecast_customers(same_day).customers["expected_revenue_90d"] == 0).all()


def test_a_challenger_that_always_wins_is_chosen_even_if_another_has_a_higher_mean():
    evidence = _evidence({"top_past_revenue": [0.60, 0.62, 0.64], "trained_model": [0.75, 0.60, 0.66],
                          "decayed_revenue": [0.61, 0.63, 0.65]})
    assert decide(evidence, ProgramConfig())[0] == "decayed_revenue"
