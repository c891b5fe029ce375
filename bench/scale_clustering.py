"""Benchmark: the clustering fit and the Insider bootstrap as the customers grow, on synthetic customers.

    .venv/bin/python bench/scale_clustering.py [--sizes 5000 30000 100000] [--no-bootstrap]

Each size runs in a fresh interpreter (the feature mart's columns drawn from the demo's personas, as in
python_jobs/tests/test_scale.py, no database): the job's fit (cluster.job.fit_model with the default
ClusterConfig: the grid, the selection, the model) and the model's assignment of every customer, then the run's
bootstrap (program.hypotheses) with the default 1,000 resamples. For each it prints the seconds, the process's
peak resident memory (imports and data included) and, from a second, traced run, the peak of memory allocated
through Python's allocators (NumPy included; SciPy's private copy of Ward's distance matrix is not seen there).
The product's requirement: no Python process above 2 GB resident. Above ClusterConfig.fit_sample customers the
grid fits a stratified sample, so time and memory stop growing with the customers but for the linear steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

PYTHON_JOBS = Path(__file__).resolve().parents[1] / "python_jobs"

STEP = """
import json, resource, sys, time, tracemalloc
from datetime import date

import numpy as np

from insiders.cluster.config import ClusterConfig
from insiders.cluster.job import fit_model
from insiders.program.hypotheses import measure_hypotheses
from insiders.program.config import ProgramConfig
from tests.test_scale import synthetic_features

n_customers, step, traced = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "traced"
features = synthetic_features(n_customers)


def run():
    if step == "fit":
        model, candidates, selection = fit_model(features, ClusterConfig(), date(2011, 12, 9), previous=None)
        model.assign(features)
        return f"{model.candidate_id} of {len(candidates)} candidates, fitted on {candidates[0].sample_size:,}"
    gross = features["gross_revenue"].to_numpy()
    rows = measure_hypotheses(features, gross >= np.quantile(gross, 0.85),
                              resamples=ProgramConfig().bootstrap_resamples)
    return f"{int(rows['holds'].sum())} of {len(rows)} hypotheses hold"


if traced:
    tracemalloc.start()
started = time.perf_counter()
outcome = run()
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "outcome": outcome,
                  "traced_mib": tracemalloc.get_traced_memory()[1] / 2**20 if traced else None,
                  "peak_rss_mib": peak / 2**20 if sys.platform == "darwin" else peak / 1024}))
"""


def measure(n_customers: int, step: str, traced: bool) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(PYTHON_JOBS), os.environ.get("PYTHONPATH"))
                                                        if p)}
    result = subprocess.run([sys.executable, "-c", STEP, str(n_customers), step, "traced" if traced else "plain"],
                            capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return {"failed": last}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 30_000, 100_000])
    parser.add_argument("--no-bootstrap", action="store_true", help="time the clustering fit alone")
    args = parser.parse_args()
    steps = ["fit"] if args.no_bootstrap else ["fit", "bootstrap"]
    print(f"{'customers':>10} {'step':>9} {'seconds':>8} {'peak RSS':>9} {'traced':>8}  outcome", flush=True)
    for n_customers in args.sizes:
        for step in steps:
            plain = measure(n_customers, step, traced=False)
            if "failed" in plain:
                print(f"{n_customers:>10,} {step:>9}  failed: {plain['failed']}", flush=True)
                continue
            traced = measure(n_customers, step, traced=True)
            print(f"{n_customers:>10,} {step:>9} {plain['seconds']:>8.1f} {plain['peak_rss_mib']:>5.0f} MiB "
                  f"{traced.get('traced_mib') or float('nan'):>4.0f} MiB  {plain['outcome']}", flush=True)


if __name__ == "__main__":
    main()
