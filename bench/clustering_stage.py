"""Benchmark: the default clustering stage against the seeds' approach, in one process, on the same customers.

    make bench                      # or: .venv/bin/python bench/clustering_stage.py [--lines-file FILE]

Prepares a database `insiders_bench` on the embedded server (the real UCI file from ../shared/data, loaded and
built once), reads the feature mart, then times each approach (untraced) and measures its peak memory (a second,
traced run):
- default: `insiders cluster --refit` minus the database writes (grid of candidates, selection, naming, rules);
- seeds: MinMax-scaled features, a random forest predicting revenue, its leaves projected with UMAP to 2-D, a
  Gaussian mixture with 8 components (the notebooks' final choice), silhouette in that 2-D space.
Figures are for this machine in this run; compare the ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import psycopg
from seeds import seeds_clustering  # bench/seeds.py: the seeds' approach, shared with bench/pipeline.py

from insiders.cluster.config import ClusterConfig
from insiders.cluster.job import fit_model
from insiders.cluster.rules import insider_rules
from insiders.db import resolve_target
from insiders.dbt_runner import run_dbt
from insiders.load import load_file
from insiders.settings import Paths
from insiders.warehouse import PostgresWarehouse

REAL_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail.parquet"


def traced_peak(step: Callable[[], str]) -> float:
    """Peak of memory allocated through Python's allocators (NumPy arrays included) during `step`, in MiB."""
    tracemalloc.start()
    try:
        step()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def measure(name: str, step: Callable[[], str]) -> dict[str, object]:
    """Time one untraced run, then trace a second: tracing slows allocation-heavy code such as UMAP fourfold."""
    started = time.perf_counter()
    outcome = step()
    seconds = time.perf_counter() - started
    peak = traced_peak(step)
    print(f"{name:>8}: {seconds:7.1f} s, peak traced memory {peak:7.0f} MiB  ({outcome})", flush=True)
    return {"approach": name, "seconds": seconds, "peak_mib": peak}


def default_stage(features: pd.DataFrame, as_of: date) -> str:
    config = ClusterConfig()
    model, candidates, _ = fit_model(features, config, as_of, previous=None)
    assignment = model.assign(features)
    top_ids = {s.segment_id for s in model.segments if s.is_top_segment}
    in_top = np.isin(assignment.segment_id, list(top_ids))
    insider_rules(features, in_top, config)
    return f"{model.candidate_id} of {len(candidates)} candidates, top segment {in_top.mean():.1%} of customers"


def prepare(paths: Paths, lines_file: Path) -> tuple[pd.DataFrame, date]:
    base = resolve_target(paths)
    target = replace(base, dbname="insiders_bench") if base.embedded else base
    if base.embedded:
        with psycopg.connect(replace(base, dbname="postgres").url, autocommit=True) as conn:
            if not conn.execute("select 1 from pg_database where datname = 'insiders_bench'").fetchone():
                conn.execute("create database insiders_bench")
    with psycopg.connect(target.url) as conn:
        if not load_file(conn, lines_file).already_loaded:
            run_dbt(paths, target, ["build", "--exclude", "source:ml+"], quiet=True)
        warehouse = PostgresWarehouse(conn)
        as_of = warehouse.latest_as_of()
        return warehouse.read_features(as_of), as_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines-file", type=Path, default=REAL_FILE, help="invoice file to benchmark on")
    args = parser.parse_args()
    features, as_of = prepare(Paths.resolve(), args.lines_file)
    print(f"{len(features):,} customers as of {as_of}, {psutil.cpu_count()} cores", flush=True)
    ours = measure("default", lambda: default_stage(features, as_of))
    seeds = measure("seeds", lambda: seeds_clustering(features))
    print(f"\nthe default stage is {seeds['seconds'] / ours['seconds']:.1f}x faster than the seeds' approach "
          f"and needs {seeds['peak_mib'] / ours['peak_mib']:.1f}x less memory at its peak")


if __name__ == "__main__":
    main()
