"""Benchmark: `insiders load` speed and peak memory on the real UCI file and on demo CSVs of 1M and 10M lines.

    .venv/bin/python bench/load.py                          # real Parquet file, demo CSVs of 1M and 10M lines
    .venv/bin/python bench/load.py --lines 1000000          # one demo size only, no real file
    .venv/bin/python bench/load.py --no-real --lines 1000000 --repeat 3
    .venv/bin/python bench/load.py --against /tmp/predup --against /tmp/other   # ratios against other checkouts

With --against CHECKOUT (a git worktree of another commit, e.g. `git worktree add --detach /tmp/predup 000fb95`),
each load is repeated with that checkout's loader (its python_jobs first on PYTHONPATH, this environment's
packages), in turn with this one's, so that the ratios compare loaders measured in the same minutes of one run.

Demo CSVs are generated once with `insiders demo-data` into --data-dir (default /tmp/insiders-loadbench) and reused.
Each file is loaded into a fresh database `loadbench_*` on the embedded server (started if needed), dropped
afterwards, by a child process of its own, so that its peak RSS (resource.getrusage) is that load's alone; the
RSS after imports, before loading, is shown for reference. A checkpoint before each load keeps what earlier loads
left for the server to write out from slowing this one. Figures are for this machine in this run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

REAL_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail.parquet"
VENV_BIN = Path(sys.executable).parent


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def child(path: Path, url: str) -> None:
    """Load one file into the database at `url`; print the figures as JSON on the last line."""
    import psycopg

    from insiders.load import load_file

    before = _peak_rss_mib()
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        result = load_file(conn, path)
        seconds = time.perf_counter() - started
    print(json.dumps({
        "lines_read": result.lines_read, "lines_loaded": result.lines_loaded, "lines_rejected": result.lines_rejected,
        "seconds": seconds, "rss_before_mib": before, "peak_rss_mib": _peak_rss_mib(),
    }))


def demo_file(data_dir: Path, lines: int) -> Path:
    out = data_dir / f"demo_{lines}.csv"
    if not out.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        print(f"generating {out} ({lines:,} lines) …", flush=True)
        subprocess.run([str(VENV_BIN / "insiders"), "demo-data", "--lines", str(lines), "--out", str(out)],
                       check=True)
    return out


def bench_one(path: Path, label: str, checkout: Path | None = None) -> dict[str, object]:
    import psycopg

    from insiders.db import resolve_target

    target = resolve_target()
    admin = replace(target, dbname="postgres").url
    name = f"loadbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("checkpoint")  # what earlier loads left to write out is not charged to this one
    try:
        env = dict(os.environ)
        if checkout is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(checkout / "python_jobs"), env.get("PYTHONPATH")]))
        done = subprocess.run([sys.executable, __file__, "--child", str(path), replace(target, dbname=name).url],
                              check=True, capture_output=True, text=True, env=env)
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
    figures["label"] = label = f"{label} [{checkout.name if checkout else 'this'}]"
    figures["lines_per_second"] = figures["lines_read"] / figures["seconds"]
    print(f"{label:<40} {figures['lines_read']:>11,} lines  {figures['seconds']:7.2f} s  "
          f"{figures['lines_per_second']:>10,.0f} lines/s  peak RSS {figures['peak_rss_mib']:6.0f} MiB "
          f"(after imports {figures['rss_before_mib']:.0f} MiB)  rejected {figures['lines_rejected']:,}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="*", default=[1_000_000, 10_000_000],
                        help="demo CSV sizes to load (default: 1M and 10M)")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/insiders-loadbench"),
                        help="where demo CSVs are generated once and reused")
    parser.add_argument("--real", type=Path, default=REAL_FILE, help="the real UCI file (Parquet)")
    parser.add_argument("--no-real", action="store_true", help="skip the real file")
    parser.add_argument("--repeat", type=int, default=1, help="loads of each file (each into a fresh database)")
    parser.add_argument("--against", type=Path, action="append", default=[],
                        help="another checkout whose loader is measured in turn with this one's (repeatable)")
    parser.add_argument("--child", nargs=2, metavar=("FILE", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), args.child[1])
        return
    files: list[tuple[Path, str]] = []
    if not args.no_real:
        if args.real.exists():
            files.append((args.real, f"real {args.real.suffix[1:]}"))
        else:
            print(f"the real file is not at {args.real}; skipped", file=sys.stderr)
    files += [(demo_file(args.data_dir, n), f"demo csv {n:,}") for n in args.lines]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores", flush=True)
    for path, label in files:
        seconds: dict[Path | None, list[float]] = {}
        for _ in range(args.repeat):
            for checkout in [None, *args.against]:
                seconds.setdefault(checkout, []).append(float(bench_one(path, label, checkout)["seconds"]))
        for checkout in args.against:
            ratio = sum(seconds[checkout]) / sum(seconds[None])
            print(f"{label}: {checkout.name} took {ratio:.2f}x the time of this loader", flush=True)


if __name__ == "__main__":
    main()
