"""Benchmark: how the run grows with the data, and what appending one day costs.

    .venv/bin/python bench/scale.py [--lines 1000000,3000000,10000000] [--data-dir /tmp/insiders-scale]

For each size, the demo generator's CSV (made once and kept in --data-dir) goes through `insiders run` on a new
database, as its own process: per-stage wall time (load, features, segments/forecast/Insiders, marts), lines
loaded per second, and the peak resident memory of the Python process (sampled every 50 ms). Then, on the
largest database, one more day (the last day's lines again, dated the next day, about 0.3% of the lines) is
appended with `insiders run --input DAY.csv`, which loads it and labels the new as-of date: the figure to compare
with the full run. --days appends that many days one after the other (dated the following days, under new
invoice numbers), as a daily schedule would; a single day's time varies by a fifth on a shared machine, so their
median is the figure compared. PostgreSQL's memory is what its configuration allows (printed), not sampled.
Before the first day the database is vacuumed and analyzed (timed, not counted), which approximates the state
autovacuum leaves it in by the next day of a daily schedule. Right after the full run autovacuum is still going
through the lines the run wrote, and a day measured then shares the two cores with it.
Figures are for this machine in this run: compare the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import psutil
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from measure import INSIDERS, Measured, drop_database, environment, new_database, run_measured, show

from insiders.db import resolve_target
from insiders.demo_data import generate
from insiders.settings import Paths, Target

MEMORY_SETTINGS = ("shared_buffers", "work_mem", "maintenance_work_mem", "max_connections")


def demo_file(data_dir: Path, n_lines: int) -> Path:
    path = data_dir / f"demo_{n_lines}.csv"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        generate(path, n_lines=n_lines, seed=42)
    return path


def next_day_file(source: Path, out: Path, days_later: int = 1) -> tuple[Path, date, int]:
    """The source's last day of lines, dated `days_later` days later under new invoice numbers."""
    table = pacsv.read_csv(source, convert_options=pacsv.ConvertOptions(
        column_types={name: pa.string() for name in ("InvoiceNo", "StockCode", "InvoiceDate", "CustomerID")}))
    day_text = pc.utf8_slice_codeunits(table["InvoiceDate"], 0, 10)
    last = max(date(int(y), int(m), int(d)) for m, d, y in
               (text.split(" ")[0].split("/") for text in pc.unique(day_text).to_pylist()))
    prefix = f"{last.month}/{last.day}/{last.year} "
    lines = table.filter(pc.starts_with(table["InvoiceDate"], prefix))
    following = last + timedelta(days=days_later)
    lines = lines.set_column(lines.schema.get_field_index("InvoiceDate"), "InvoiceDate", pc.replace_substring(
        lines["InvoiceDate"], prefix, f"{following.month}/{following.day}/{following.year} "))
    lines = lines.set_column(lines.schema.get_field_index("InvoiceNo"), "InvoiceNo",
                             pc.binary_join_element_wise(lines["InvoiceNo"], pa.scalar("N" * days_later), ""))
    pacsv.write_csv(lines, out)
    return out, following, lines.num_rows


def memory_settings(target: Target) -> str:
    with psycopg.connect(target.url) as conn:
        rows = conn.execute("select name, setting, unit from pg_settings where name = any(%s)",
                            (list(MEMORY_SETTINGS),)).fetchall()
    return ", ".join(f"{name} {setting}{' (' + unit + ')' if unit else ''}" for name, setting, unit in rows)


def vacuum_analyze(target: Target) -> float:
    """`vacuum (analyze)` of the whole database (autovacuum's work after a large load, done now); its seconds."""
    started = time.perf_counter()
    with psycopg.connect(target.url, autocommit=True) as conn:
        conn.execute("vacuum (analyze)")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", default="1000000,3000000,10000000",
                        type=lambda text: [int(n) for n in text.split(",")], help="demo sizes, comma-separated")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "insiders-scale")
    parser.add_argument("--days", type=int, default=3, help="days appended one after the other (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the databases (their names are printed)")
    args = parser.parse_args()
    base = resolve_target(Paths.resolve())
    print(f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; PostgreSQL "
          f"{memory_settings(base)}", flush=True)
    made: list[Target] = []
    largest: tuple[Target, Path, Measured, Path] | None = None
    with tempfile.TemporaryDirectory(prefix="insiders-scale-") as states:
        try:
            for n_lines in sorted(args.lines):
                source = demo_file(args.data_dir, n_lines)
                target = new_database(base, f"bench_scale_{n_lines // 1_000_000}m")
                made.append(target)
                # each database keeps its own state directory (its dbt state and the fitted models' files)
                state = Path(states) / target.dbname
                run = run_measured(f"insiders run, {n_lines:,} lines",
                                   [INSIDERS, "run", "--input", str(source)], environment(target, state))
                show(run)
                load = run.stages.get("load", float("nan"))
                print(f"    load {n_lines / load:,.0f} lines/s; whole run {n_lines / run.seconds:,.0f} lines/s",
                      flush=True)
                largest = (target, source, run, state)
            if largest:
                target, source, full, state = largest
                print(f"vacuum (analyze) of the database before the first day: {vacuum_analyze(target):.1f} s "
                      "(not counted)", flush=True)
                ratios, shares = [], []
                for days_later in range(1, args.days + 1):
                    suffix = "next_day" if days_later == 1 else f"day_{days_later}"
                    day_file, day, n_day = next_day_file(source, args.data_dir / f"{source.stem}_{suffix}.csv",
                                                         days_later)
                    append = run_measured(f"append {day} ({n_day:,} lines) and run for it",
                                          [INSIDERS, "run", "--input", str(day_file), "--as-of", day.isoformat()],
                                          environment(target, state))
                    show(append)
                    ratios.append(append.seconds / full.seconds)
                    shares.append(n_day / max(args.lines))
                print(f"\nappending one day ({statistics.median(shares):.2%} of the lines), {len(ratios)} days: "
                      f"median {statistics.median(ratios):.1%} of the full run's time (each "
                      f"{', '.join(f'{ratio:.1%}' for ratio in ratios)}; target: under 10%)")
        finally:
            if not args.keep:
                for target in made:
                    drop_database(base, target)
            else:
                print("databases kept:", ", ".join(t.dbname for t in made))


if __name__ == "__main__":
    main()
