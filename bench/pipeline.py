"""Benchmark: the whole `insiders run` on an invoice file, against the seeds' approach, in one session.

    .venv/bin/python bench/pipeline.py [--input FILE] [--months 12]

Each step runs as its own process, as a user would run it, against a new database on the embedded server (or
the server of INSIDERS_DSN) and a new state directory (so the first run parses the dbt project from scratch):
1. `insiders run --input FILE` on an empty database: wall time, per-stage times, peak memory of the process;
2. the same command again with nothing changed;
3. `insiders backfill` of the last MONTHS month-ends on another database where the file is only loaded;
4. the seeds' approach (bench/seeds.py: pandas cleaning and features, random-forest leaves, UMAP, GMM with 8
   components) twice, the second with numba's cache warm, which is the one compared.
Figures are for this machine in this run: compare the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import date
from pathlib import Path

import psutil
import psycopg
from measure import INSIDERS, drop_database, environment, new_database, run_measured, show

from insiders.backfill import month_ends
from insiders.db import resolve_target
from insiders.settings import Paths, Target

BENCH_DIR = Path(__file__).resolve().parent
REAL_FILE = BENCH_DIR.parents[1] / "shared" / "data" / "online_retail.parquet"


def last_line_date(target: Target) -> date:
    with psycopg.connect(target.url) as conn:
        return conn.execute("select max(invoiced_at)::date from raw.invoice_lines").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=REAL_FILE, help="invoice file (default: the real UCI file)")
    parser.add_argument("--months", type=int, default=12, help="month-ends in the backfill (default 12)")
    parser.add_argument("--no-seeds", action="store_true", help="skip the seeds' approach")
    args = parser.parse_args()
    if not args.input.exists():
        raise SystemExit(f"{args.input}: no such file")
    base = resolve_target(Paths.resolve())
    print(f"{args.input.name}; {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; "
          f"PostgreSQL at {base.host}:{base.port}", flush=True)
    run_db, backfill_db = new_database(base, "bench_run"), new_database(base, "bench_backfill")
    try:
        with tempfile.TemporaryDirectory(prefix="insiders-bench-") as state:
            env = environment(run_db, Path(state))
            first = run_measured("insiders run, empty database", [INSIDERS, "run", "--input", str(args.input)], env)
            show(first)
            second = run_measured("insiders run again, nothing changed",
                                  [INSIDERS, "run", "--input", str(args.input)], env)
            show(second)
        with tempfile.TemporaryDirectory(prefix="insiders-bench-") as state:
            env = environment(backfill_db, Path(state))
            load = run_measured("insiders load (for the backfill)", [INSIDERS, "load", str(args.input)], env)
            show(load)
            last = last_line_date(backfill_db)
            dates = month_ends(date(last.year - 2, last.month, 1), last)[-args.months:]
            backfill = run_measured(f"insiders backfill, {len(dates)} month-ends",
                                    [INSIDERS, "backfill", "--from", dates[0].isoformat(), "--to",
                                     last.isoformat(), "--monthly"], env)
            show(backfill)
    finally:
        drop_database(base, run_db)
        drop_database(base, backfill_db)
    print(f"\nbackfill of {len(dates)} month-ends / one run: {backfill.seconds / first.seconds:.2f}x "
          f"(target: at most 2x)")
    print(f"second run / first run: {second.seconds / first.seconds:.2f}x")
    if args.no_seeds:
        return
    seeds_command = [sys.executable, str(BENCH_DIR / "seeds.py"), str(args.input)]
    cold = run_measured("seeds' approach (pandas, RF + UMAP + GMM)", seeds_command, dict(os.environ))
    show(cold)
    warm = run_measured("seeds' approach again, numba cache warm", seeds_command, dict(os.environ))
    show(warm)
    print(f"the seeds' approach (warm) / insiders run from an empty database: {warm.seconds / first.seconds:.2f}x "
          f"(target: at least 5x)")


if __name__ == "__main__":
    main()
