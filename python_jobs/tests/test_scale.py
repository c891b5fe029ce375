"""Scale: the default clustering grid and the Insider bootstrap at 100,000 customers, within the product's memory
requirement, without a database.

The requirement: no Python process above 2 GB resident (the CI machine has 24 GiB; the product runs on smaller
ones). The 10-million-line demo (90,092 customers) used to die allocating 30 GiB in Ward's linkage. Here each
step runs in a fresh interpreter, so its peak resident memory (VmHWM: imports, data and all, including buffers
that tracemalloc cannot see, such as SciPy's copy of the condensed distance matrix) is measured alone, and must
stay under 1.5 GB: the requirement with a quarter kept as margin. Traced allocations are reported and bounded too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from insiders.program import evaluate
from insiders.program.evaluate import measure_groups, resample_blocks

PYTHON_JOBS = Path(__file__).resolve().parents[1]
REQUIREMENT_MIB = 2_000  # no Python process above 2 GB resident
BOUND_MIB = 1_500  # the requirement less a quarter of margin
# what the bootstrap may add to a process: its blocks (evaluate.BLOCK_CELLS, about 160 MiB) and one resample at a
# time, with room to spare; held all at once, 1,000 resamples of 100,000 customers added 0.7 to 1.1 GiB
BOOTSTRAP_GROWTH_MIB = 400
N_CUSTOMERS = 100_000
AS_OF_DAY = 373  # days from the first to the last day of the demo's year

# persona: share, invoices (inclusive range), median ticket, ticket sigma, active days (from, to), return rate
# (the shape of insiders.demo_data's personas, drawn directly as the feature mart's columns)
PERSONAS = {
    "big_regular": (0.05, (18, 45), 1_300.0, 0.5, (0, AS_OF_DAY), 0.02),
    "occasional": (0.33, (2, 5), 110.0, 0.5, (AS_OF_DAY - 240, AS_OF_DAY), 0.0),
    "one_off": (0.30, (1, 1), 150.0, 0.6, (0, AS_OF_DAY), 0.0),
    "heavy_returner": (0.09, (4, 10), 300.0, 0.5, (0, AS_OF_DAY), 0.45),
    "lapsed": (0.23, (3, 6), 70.0, 0.5, (0, 120), 0.0),
}


def synthetic_features(n_customers: int, seed: int = 0) -> pd.DataFrame:
    """Feature-mart rows of `n_customers` customers drawn from the demo's personas: every column the clustering
    fit, the naming rules, the Insider rules and the hypotheses read."""
    rng = np.random.default_rng(seed)
    names = list(PERSONAS)
    persona = rng.choice(len(names), size=n_customers, p=[PERSONAS[name][0] for name in names])
    spec = [PERSONAS[name] for name in names]

    def per(i: int) -> np.ndarray:
        return np.array([s[i] for s in spec])

    low, high = np.array([s[1][0] for s in spec]), np.array([s[1][1] for s in spec])
    n_invoices = rng.integers(low[persona], high[persona] + 1)
    owner = np.repeat(np.arange(n_customers), n_invoices)
    start = np.array([s[4][0] for s in spec])[persona][owner]
    end = np.array([s[4][1] for s in spec])[persona][owner]
    day = rng.integers(start, end + 1)
    spend = rng.lognormal(0.0, 0.3, n_customers)[owner]
    ticket = rng.lognormal(np.log(per(2)[persona][owner]), per(3)[persona][owner]) * spend
    age = AS_OF_DAY - day
    frame = pd.DataFrame({"owner": owner, "day": day, "ticket": ticket, "recent": age <= 90,
                          "decayed": ticket * 0.5 ** (age / 90.0)})
    by = frame.groupby("owner")
    first, last = by["day"].min().to_numpy(), by["day"].max().to_numpy()
    gross = by["ticket"].sum().to_numpy()
    gross_90d = frame["ticket"].where(frame["recent"], 0.0).groupby(frame["owner"]).sum().to_numpy()
    days = frame.drop_duplicates(["owner", "day"]).groupby("owner")
    n_days = days.size().to_numpy()
    n_days_90d = days["recent"].sum().to_numpy()
    return_rate = np.clip(per(5)[persona] * rng.uniform(0.5, 1.5, n_customers)
                          + 0.008 * rng.random(n_customers), 0, 1)
    n_items = np.maximum(1, np.round(gross / rng.uniform(1.5, 3.5, n_customers)))
    returned_items = np.round(n_items * return_rate)
    tenure = AS_OF_DAY - first
    return pd.DataFrame({
        "customer_id": np.arange(12_346, 12_346 + n_customers),
        "first_purchase_date": (pd.Timestamp("2010-12-01") + pd.to_timedelta(first, unit="D")).strftime("%Y-%m-%d"),
        "gross_revenue": gross, "gross_revenue_365d": gross, "gross_revenue_90d": gross_90d,
        "decayed_revenue": by["decayed"].sum().to_numpy(), "net_revenue": gross * (1 - return_rate),
        "returned_value": gross * return_rate,
        "n_invoices": n_invoices, "n_invoices_365d": n_invoices,
        "n_purchase_days": n_days, "n_purchase_days_365d": n_days, "n_purchase_days_90d": n_days_90d,
        "purchase_span_365d": last - first, "recency_days": AS_OF_DAY - last, "tenure_days": tenure,
        "avg_ticket": gross / n_invoices, "return_rate": return_rate, "return_rate_365d": return_rate,
        "n_items": n_items, "n_returned_items": returned_items,
        "n_distinct_products": np.minimum(n_items, rng.poisson(8 * n_invoices) + 1),
    })


# -- measured in a fresh interpreter -------------------------------------------------------------------------------

PRELUDE = """
import json, resource, sys, time, tracemalloc
from datetime import date

import numpy as np

from tests.test_scale import synthetic_features


def peak_rss_mib():
    # peak resident memory of this process (since the last reset_peak, where Linux allows one)
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def rss_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def reset_peak():
    # start the peak over from the current resident memory and return it (Linux); where the peak cannot be reset,
    # the current resident memory, against which the lifetime's peak overstates what follows
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return peak_rss_mib()
    except OSError:
        try:
            return rss_mib()
        except OSError:
            return 0.0  # no /proc: growth is then the whole peak
"""


def run_child(body: str) -> dict[str, object]:
    """Run `body` (after PRELUDE) in a new interpreter and return the JSON object it prints last."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(PYTHON_JOBS), os.environ.get("PYTHONPATH"))
                                                        if p)}
    result = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)], capture_output=True, text=True,
                            env=env, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_default_grid_labels_100k_customers_within_the_memory_requirement():
    """The job's fit path (cluster.job.fit_model: the grid, the selection, the model) and the model's assignment,
    on 100,000 customers with the default configuration: everyone labelled, every candidate fitted on the
    stratified sample, and no more than 1.5 GB resident at any point (Ward's linkage over all of them would ask
    for 75 GB)."""
    out = run_child(f"""
        from insiders.cluster.config import ClusterConfig
        from insiders.cluster.job import fit_model

        features = synthetic_features({N_CUSTOMERS})
        config = ClusterConfig()
        tracemalloc.start()
        model, candidates, selection = fit_model(features, config, date(2011, 12, 9), previous=None)
        assignment = model.assign(features)
        traced = tracemalloc.get_traced_memory()[1] / 2**20
        segment_ids, counts = np.unique(assignment.segment_id, return_counts=True)
        print(json.dumps({{
            "n_labelled": int(len(assignment.segment_id)), "n_missing": int(np.isnan(assignment.distance).sum()),
            "segment_ids": segment_ids.tolist(), "counts": counts.tolist(),
            "model_segments": sorted(s.segment_id for s in model.segments),
            "n_candidates": len(candidates), "algorithms": sorted({{c.algorithm for c in candidates}}),
            "sample_sizes": sorted({{c.sample_size for c in candidates}}),
            "fit_sample": config.fit_sample, "selection": selection.as_dict(),
            "traced_mib": traced, "peak_rss_mib": peak_rss_mib(),
        }}))
    """)
    assert out["n_labelled"] == N_CUSTOMERS and out["n_missing"] == 0
    assert out["segment_ids"] == out["model_segments"]  # every segment of the model has customers
    assert 4 <= len(out["segment_ids"]) <= 8
    assert out["n_candidates"] == 22 and out["algorithms"] == ["kmeans", "ward"]
    assert out["sample_sizes"] == [out["fit_sample"]]
    assert out["selection"]["fit_sample"] == {"n_customers": N_CUSTOMERS, "fitted_on": out["fit_sample"],
                                              "sampled": True}
    assert out["traced_mib"] < BOUND_MIB, out
    assert out["peak_rss_mib"] < BOUND_MIB, out


def test_insider_bootstrap_at_100k_customers_within_the_memory_requirement():
    """The run's bootstrap (hypotheses) and the backtest's (groups), each with the default 1,000 resamples, on
    100,000 customers: memory grows by the blocks, not by resamples x customers."""
    out = run_child(f"""
        from insiders.program.config import ProgramConfig
        from insiders.program.evaluate import measure_groups
        from insiders.program.hypotheses import measure_hypotheses

        features = synthetic_features({N_CUSTOMERS})
        gross = features["gross_revenue"].to_numpy()
        insider = gross >= np.quantile(gross, 0.85)
        future = gross * np.random.default_rng(1).lognormal(0.0, 1.0, len(gross)) - 50
        resamples = ProgramConfig().bootstrap_resamples
        before = reset_peak()
        tracemalloc.start()
        hypotheses = measure_hypotheses(features, insider, resamples=resamples)
        groups = measure_groups(future, {{"insiders": insider, "first": np.arange(len(gross)) < len(gross) // 7}},
                                reference="insiders", resamples=resamples)
        traced = tracemalloc.get_traced_memory()[1] / 2**20
        print(json.dumps({{
            "n_hypotheses": len(hypotheses), "n_groups": len(groups), "resamples": resamples,
            "intervals": bool(groups["future_revenue_share_low"].notna().all()
                              and hypotheses["insiders_value_low"].notna().all()),
            "traced_mib": traced, "growth_mib": peak_rss_mib() - before, "peak_rss_mib": peak_rss_mib(),
            "start_mib": before,
        }}))
    """)
    assert (out["n_hypotheses"], out["n_groups"], out["intervals"]) == (6, 2, True)
    assert out["resamples"] >= 1_000
    assert out["traced_mib"] < BOOTSTRAP_GROWTH_MIB, out
    assert out["growth_mib"] < BOOTSTRAP_GROWTH_MIB, out
    assert out["peak_rss_mib"] < BOUND_MIB, out


# -- the blocks do not change the figures ---------------------------------------------------------------------------

def test_bootstrap_blocks_draw_the_same_resamples_as_one_matrix(monkeypatch):
    rng = np.random.default_rng(5)
    n_customers, resamples = 1_000, 120
    [whole] = resample_blocks(n_customers, resamples, seed=9, block_cells=resamples * n_customers)  # one block
    blocks = list(resample_blocks(n_customers, resamples, seed=9, block_cells=7 * n_customers))
    assert [b.shape[1] for b in blocks] == [7] * 17 + [1]
    assert np.array_equal(np.concatenate(blocks, axis=1), whole)
    assert (whole.sum(axis=0) == n_customers).all()

    future = rng.lognormal(3, 2, n_customers) - 30
    groups = {"a": rng.random(n_customers) < 0.15, "b": rng.random(n_customers) < 0.3}
    one_block = measure_groups(future, groups, reference="a", resamples=resamples, seed=9)
    monkeypatch.setattr(evaluate, "BLOCK_CELLS", 7 * n_customers)
    in_blocks = measure_groups(future, groups, reference="a", resamples=resamples, seed=9)
    pd.testing.assert_frame_equal(one_block, in_blocks, rtol=1e-12)
