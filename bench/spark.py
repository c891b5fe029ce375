"""Benchmark: the same `insiders run` on PostgreSQL and on Spark, side by side.

    .venv/bin/python bench/spark.py [--lines 10000000 | --input FILE] [--engines postgres,spark] [--as-of D]

The input is the demo generator's CSV (`insiders demo-data --lines N --seed 7`, made once and kept in --data-dir,
outside git) or a file given by --input (e.g. the real UCI Parquet file). For each engine, one
`insiders run --input FILE --json` (PostgreSQL: the embedded server; Spark: `--engine spark`, a local session) runs
as its own process from an empty state directory, so that each pays its own start: initdb and the server's start,
or the JVM's and the metastore's. The default program and the same as-of date on both (the last date unless
--as-of). Measured: wall time, each stage's seconds from the run's JSON, lines per second, and resident memory
sampled every --interval seconds: the Python process alone, its children (the JVM that pyspark starts), and the
embedded PostgreSQL server (started detached, so not a child: found by its data directory's postmaster.pid; its
processes share shared_buffers, so the server counts as the sum of their proportional set sizes, PSS, with the
plain sum of RSS printed beside it). Both engines must report the same customers and gross revenue.
Figures are for this machine in this run: compare the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psutil
import pyarrow.parquet as pq
from measure import INSIDERS

from insiders.embedded import SERVER_SETTINGS

BENCH_DIR = Path(__file__).resolve().parent
REAL_FILE = BENCH_DIR.parents[1] / "shared" / "data" / "online_retail.parquet"
DEMO_SEED = 7
ENGINES = ("postgres", "spark")
SPARK_SETTINGS = {"INSIDERS_SPARK_DRIVER_MEMORY": "2g", "INSIDERS_SPARK_SHUFFLE_PARTITIONS": "8",
                  "INSIDERS_SPARK_MASTER": "local[*]"}  # the profile's defaults (profiles.yml.example)

SEGMENT_MARTS = sorted(path.stem for path in (BENCH_DIR.parent / "models" / "marts" / "segments").glob("*.sql"))

# the comparable steps: (what, PostgreSQL's stages, Spark's stages); the embedded server starts before the first
# stage (the writer's lock asks for the database), the JVM in Spark's first
STEPS = (
    ("invoice file to feature mart", ("load", "dbt build (features)"),
     ("dbt build on Spark (staging)", "dbt build on Spark (features)")),
    ("segments, forecast, Insiders", ("segments, forecast and Insiders",), ("segments, forecast and Insiders",)),
    ("segment marts", ("dbt build (segment marts)",), ("dbt build on Spark (segment marts)",)),
)


@dataclass
class Memory:
    """Peaks in bytes over the samples; `total` is the peak of the sum at one instant, not the sum of peaks."""

    python: int = 0
    children: int = 0
    server_pss: int = 0
    server_rss: int = 0
    total: int = 0
    samples: int = 0
    # seconds into the run at which the total and the children peaked (to place them in a stage)
    total_at: float = 0.0
    children_at: float = 0.0


@dataclass
class EngineRun:
    engine: str
    seconds: float
    memory: Memory
    summary: dict = field(default_factory=dict)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    error: str = ""
    marts_built: list[str] = field(default_factory=list)  # the segment marts found in Spark's warehouse

    @property
    def stages(self) -> dict[str, float]:
        return self.summary.get("stage_seconds", {})

    def step(self, names: tuple[str, ...]) -> float | None:
        return sum(self.stages[name] for name in names) if names and all(n in self.stages for n in names) else None


def demo_file(data_dir: Path, n_lines: int) -> Path:
    """The demo CSV of `n_lines` lines, generated once by the CLI (as a user would) and kept."""
    path = data_dir / f"demo_{n_lines}_seed{DEMO_SEED}.csv"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.csv")
        started = time.perf_counter()
        subprocess.run([INSIDERS, "demo-data", "--lines", str(n_lines), "--seed", str(DEMO_SEED), "--out",
                        str(partial), "--truth", str(data_dir / f"{path.stem}.personas.csv")], check=True)
        partial.rename(path)  # only a finished file is reused
        print(f"generated {path} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def count_lines(path: Path) -> int:
    """Invoice lines in the file: Parquet's row count, or a CSV's lines less its header."""
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    with path.open("rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 24), b"")) - 1


def _rss(proc: psutil.Process) -> int:
    try:
        return proc.memory_info().rss
    except psutil.Error:
        return 0


def _server(state: Path) -> list[psutil.Process]:
    """The embedded server's processes: the postmaster named by its data directory's pid file, and its children."""
    try:
        postmaster = psutil.Process(int((state / "pgdata" / "postmaster.pid").read_text().split()[0]))
        return [postmaster, *postmaster.children(recursive=True)]
    except (OSError, ValueError, IndexError, psutil.Error):
        return []


def _sample(handle: psutil.Process, state: Path, memory: Memory, elapsed: float) -> None:
    python = _rss(handle)
    try:
        children = sum(_rss(child) for child in handle.children(recursive=True))
    except psutil.Error:
        children = 0
    server_pss = server_rss = 0
    for proc in _server(state):
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        server_pss += info.pss
        server_rss += info.rss
    if children > memory.children:
        memory.children, memory.children_at = children, elapsed
    if python + children + server_pss > memory.total:
        memory.total, memory.total_at = python + children + server_pss, elapsed
    memory.python = max(memory.python, python)
    memory.server_pss = max(memory.server_pss, server_pss)
    memory.server_rss = max(memory.server_rss, server_rss)
    memory.samples += 1


def run_engine(engine: str, source: Path, as_of: date | None, interval: float, keep: bool) -> EngineRun:
    """One `insiders run --json` on `engine` as its own process, from an empty state directory."""
    command = [INSIDERS, "run", "--input", str(source), "--json"]
    if engine == "spark":
        command[2:2] = ["--engine", "spark"]
    if as_of is not None:
        command += ["--as-of", as_of.isoformat()]
    # the state directory itself is the temporary one: as root, the server's system user must reach it
    state = Path(tempfile.mkdtemp(prefix=f"insiders-bench-{engine}-"))
    env = {key: value for key, value in os.environ.items() if key != "INSIDERS_DSN"}  # the embedded server, ours
    env.update({"INSIDERS_STATE_DIR": str(state), "DO_NOT_TRACK": "1"})
    memory, failed = Memory(), True
    load_before = os.getloadavg()
    print(f"\n{engine}: {' '.join(command[1:])}\n  state directory {state}; load average "
          f"{load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f}", flush=True)
    try:
        with (state / "bench.stdout").open("w+") as out, (state / "bench.stderr").open("w+") as err:
            started = time.perf_counter()
            process = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
            handle = psutil.Process(process.pid)
            while process.poll() is None:
                _sample(handle, state, memory, time.perf_counter() - started)
                time.sleep(interval)
            seconds = time.perf_counter() - started
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        run = EngineRun(engine, seconds, memory, load_before=load_before, load_after=os.getloadavg())
        if process.returncode != 0:
            run.error = f"exit {process.returncode}:\n{stderr[-4000:]}"
        else:
            # the JSON is the only thing the command prints on stdout; skip anything a library may have printed
            run.summary = json.loads(stdout[stdout.index("{\n"):])
        if engine == "spark":
            marts = state / "spark" / "warehouse" / "spark_marts.db"
            run.marts_built = sorted(p.name for p in marts.glob("*") if p.name in SEGMENT_MARTS)
        failed = bool(run.error)
        return run
    finally:
        if engine == "postgres":
            subprocess.run([INSIDERS, "db", "stop"], env=env, capture_output=True, check=False)
        if keep or failed:  # a failed run's logs are there (postgres.log, spark/spark.log, bench.stderr)
            print(f"  state directory kept: {state}", flush=True)
        else:
            shutil.rmtree(state, ignore_errors=True)


def stage_at(run: EngineRun, elapsed: float) -> str:
    """The stage running `elapsed` seconds into the run, counting the time outside the stages as start-up (the
    server's start, imports): approximate by that much."""
    end = run.seconds - sum(run.stages.values())
    if elapsed < end:
        return "start-up"
    for name, seconds in run.stages.items():
        end += seconds
        if elapsed < end:
            return name
    return "the end"


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _ratio(spark: float | None, postgres: float | None) -> str:
    return f"{spark / postgres:.2f}x" if spark is not None and postgres else "-"


def show(run: EngineRun, n_lines: int) -> None:
    after = run.load_after
    print(f"  load average at the end {after[0]:.1f} {after[1]:.1f} {after[2]:.1f}", flush=True)
    if run.error:
        print(f"  FAILED after {run.seconds:.1f} s, {run.engine} {run.error}", flush=True)
        return
    print(f"  {'wall time':<40}{run.seconds:10.1f} s   {n_lines / run.seconds:>12,.0f} lines/s", flush=True)
    for name, seconds in run.stages.items():
        print(f"    {name:<38}{seconds:10.1f} s", flush=True)
    print(f"    {'(outside the stages: start-up, summary)':<38}{run.seconds - sum(run.stages.values()):10.1f} s")
    if run.engine == "spark":
        print(f"  segment marts built on Spark: {len(run.marts_built)} of {len(SEGMENT_MARTS)}"
              f"{' (' + ', '.join(run.marts_built) + ')' if run.marts_built else ''}")
    m = run.memory
    print(f"  peak memory: Python {_mib(m.python)}, its children (JVM) {_mib(m.children)}, server "
          f"{_mib(m.server_pss)} PSS ({_mib(m.server_rss)} RSS summed); total {_mib(m.total)} "
          f"({m.samples} samples)")
    print(f"    the total peaked {m.total_at:.0f} s into the run ({stage_at(run, m.total_at)})"
          + (f", the children {m.children_at:.0f} s in ({stage_at(run, m.children_at)})" if m.children else ""))
    print(f"  as of {run.summary['as_of']}: {run.summary['customers']:,} customers, gross revenue "
          f"{run.summary['gross_revenue']:,.2f}; {run.summary['insiders']:,} Insiders, "
          f"{len(run.summary['segments'])} segments", flush=True)


def compare(runs: dict[str, EngineRun], n_lines: int) -> None:
    postgres, spark = runs["postgres"], runs["spark"]
    print(f"\n{'side by side':<32}{'PostgreSQL':>14}{'Spark':>14}{'Spark/PostgreSQL':>18}")
    rows = [(what, postgres.step(pg_names), spark.step(spark_names)) for what, pg_names, spark_names in STEPS]
    rows.append(("outside the stages", *(run.seconds - sum(run.stages.values()) for run in (postgres, spark))))
    rows.append(("wall time", postgres.seconds, spark.seconds))
    for what, pg_seconds, spark_seconds in rows:
        cells = [f"{s:.1f} s" if s is not None else "-" for s in (pg_seconds, spark_seconds)]
        # a marts stage that built nothing on Spark is no comparison
        ratio = "(none built)" if what == "segment marts" and not spark.marts_built else _ratio(spark_seconds,
                                                                                                 pg_seconds)
        print(f"{what:<32}{cells[0]:>14}{cells[1]:>14}{ratio:>18}")
    print(f"{'lines/s, whole run':<32}{n_lines / postgres.seconds:>14,.0f}{n_lines / spark.seconds:>14,.0f}"
          f"{_ratio(n_lines / spark.seconds, n_lines / postgres.seconds):>18}")
    for what, attribute in (("peak memory, Python", "python"), ("peak memory, total", "total")):
        pg_bytes, spark_bytes = getattr(postgres.memory, attribute), getattr(spark.memory, attribute)
        print(f"{what:<32}{_mib(pg_bytes):>14}{_mib(spark_bytes):>14}{_ratio(spark_bytes, pg_bytes):>18}")
    agree = all(postgres.summary[key] == spark.summary[key] for key in ("as_of", "customers", "gross_revenue"))
    if agree:
        print(f"both engines: as of {postgres.summary['as_of']}, {postgres.summary['customers']:,} customers, "
              f"gross revenue {postgres.summary['gross_revenue']:,.2f}")
    else:
        print("\n" + "!" * 100 + "\nMISMATCH between the engines:\n" + "\n".join(
            f"  {key:<14} PostgreSQL {postgres.summary[key]!s:<20} Spark {spark.summary[key]!s}"
            for key in ("as_of", "customers", "gross_revenue", "insiders")) + "\n" + "!" * 100)
    if postgres.summary["insiders"] != spark.summary["insiders"]:
        print(f"Insiders differ: PostgreSQL {postgres.summary['insiders']:,}, Spark {spark.summary['insiders']:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=10_000_000, help="demo lines (default 10,000,000)")
    parser.add_argument("--input", type=Path, help=f"an invoice file instead of the demo data (e.g. {REAL_FILE})")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated (default postgres,spark)")
    parser.add_argument("--as-of", type=date.fromisoformat, help="as-of date (default: the last date)")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "insiders-bench-data",
                        help="where the demo CSV is made once and kept")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between memory samples")
    parser.add_argument("--keep", action="store_true", help="keep the state directories (their paths are printed)")
    args = parser.parse_args()
    engines = args.engines.split(",")
    if unknown := set(engines) - set(ENGINES):
        raise SystemExit(f"unknown engine(s) {', '.join(sorted(unknown))}: one of {', '.join(ENGINES)}")
    if args.input and not args.input.exists():
        raise SystemExit(f"{args.input}: no such file")
    source = args.input.resolve() if args.input else demo_file(args.data_dir, args.lines)
    n_lines = count_lines(source)
    load = os.getloadavg()
    print(f"{source.name}, {n_lines:,} lines; {psutil.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
          f"\nPostgreSQL: {', '.join(f'{k} {v}' for k, v in SERVER_SETTINGS.items() if 'mem' in k or 'buf' in k)}"
          f"\nSpark: {', '.join(f'{k} {os.environ.get(k, v)}' for k, v in SPARK_SETTINGS.items())}", flush=True)
    runs = {}
    for engine in engines:
        runs[engine] = run_engine(engine, source, args.as_of, args.interval, args.keep)
        show(runs[engine], n_lines)
    if all(engine in runs and not runs[engine].error for engine in ENGINES):
        compare(runs, n_lines)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", flush=True)


if __name__ == "__main__":
    main()
