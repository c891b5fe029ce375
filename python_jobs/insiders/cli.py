"""The `insiders` command: one entry point for the database, loading, dbt, clustering and reports."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import traceback
from datetime import date
from pathlib import Path

from . import db
from .errors import InsidersError
from .progress import StageTimer, setup_logging
from .settings import Paths, Target, configured_dsn

log = logging.getLogger("insiders")

DEMO_LINES = 500_000
DEMO_SEED = 42


def _cmd_db(args: argparse.Namespace, paths: Paths) -> int:
    from .embedded import EmbeddedServer

    if configured_dsn() and args.action in {"start", "stop"}:
        raise InsidersError("INSIDERS_DSN is set: the database is yours to start and stop, not the embedded one")
    server = EmbeddedServer(paths)
    if args.action == "start":
        target = server.start()
        print(f"embedded PostgreSQL running on 127.0.0.1:{target.port} (data in {server.pgdata})")
    elif args.action == "stop":
        print("embedded PostgreSQL stopped" if server.stop() else "embedded PostgreSQL was not running")
    elif args.action == "status":
        status = {"target": "INSIDERS_DSN" if configured_dsn() else "embedded", **server.status()}
        print(json.dumps(status, indent=2))
        return 0 if status["running"] or configured_dsn() else 3
    elif args.action == "url":
        print(db.resolve_target(paths).server_url)
    elif args.action == "roles":
        from .roles import create_roles

        create_roles(db.resolve_target(paths))
    return 0


def _cmd_load(args: argparse.Namespace, paths: Paths) -> int:
    from .load import load_file

    target = db.resolve_target(paths)
    with db.connect(target) as conn:
        for path in args.files:
            result = load_file(conn, Path(path), sheet=args.sheet, replace=args.replace, progress=True)
            if result.already_loaded:
                print(f"{result.path.name}: already loaded (batch {result.batch_id}); read 0, loaded 0, "
                      "duplicate 0, rejected 0")
            else:
                print(f"{result.path.name}: read {result.lines_read:,}, loaded {result.lines_loaded:,}, "
                      f"duplicate {result.lines_duplicate:,}, rejected {result.lines_rejected:,} "
                      f"(batch {result.batch_id})")
    return 0


def _cmd_demo_data(args: argparse.Namespace, paths: Paths) -> int:
    from .demo_data import generate

    generate(Path(args.out), n_lines=args.lines, seed=args.seed, truth_out=Path(args.truth) if args.truth else None)
    return 0


def _cmd_dbt(args: argparse.Namespace, paths: Paths) -> int:
    from .dbt_runner import run_dbt

    return run_dbt(paths, db.resolve_target(paths), args.dbt_args, check=False)


def _cmd_sqlfluff(args: argparse.Namespace, paths: Paths) -> int:
    from .dbt_runner import run_tool

    # sqlfluff's dbt templater compiles the project, and compiling an incremental model asks the database
    # whether the table exists: it needs the same target as dbt itself
    return run_tool(paths, db.resolve_target(paths), "sqlfluff", args.sqlfluff_args).returncode


def _cluster_config(args: argparse.Namespace):
    from .cluster.config import ClusterConfig

    overrides = {name: getattr(args, name) for name in ("k_min", "k_max", "seed", "map_embedding")
                 if getattr(args, name, None)}
    for name in ("algorithms", "embeddings"):
        if getattr(args, name, None):
            overrides[name] = tuple(getattr(args, name).split(","))
    try:
        return ClusterConfig(**overrides)
    except ValueError as exc:
        raise InsidersError(str(exc)) from exc


def _program_config(args: argparse.Namespace):
    from .program.config import ProgramConfig

    overrides = {name: getattr(args, name) for name in ("program_share", "horizon_days")
                 if getattr(args, name, None) is not None}
    if getattr(args, "definitions", None):
        overrides["candidates"] = tuple(args.definitions.split(","))
    try:
        return ProgramConfig(**overrides)
    except ValueError as exc:
        raise InsidersError(str(exc)) from exc


def _label(target: Target, paths: Paths, as_of: date, args: argparse.Namespace):
    from .cluster.job import run_clustering

    with db.connect(target) as conn:
        return run_clustering(conn, paths, as_of=as_of, refit=args.refit, config=_cluster_config(args),
                              program=_program_config(args))


def _cmd_cluster(args: argparse.Namespace, paths: Paths) -> int:
    from . import stages

    target = db.resolve_target(paths)
    with db.connect(target) as conn:
        as_of = args.as_of or stages.data_span(conn)[1]
    stages.build_features(paths, target, [as_of], _program_config(args))
    _label(target, paths, as_of, args)
    return 0


def _cmd_backfill(args: argparse.Namespace, paths: Paths) -> int:
    from .backfill import backfill, parse_range

    backfill(paths, db.resolve_target(paths), parse_range(args.start, args.end, args.monthly), refit=args.refit,
             config=_cluster_config(args), program=_program_config(args))
    return 0


def _cmd_backtest(args: argparse.Namespace, paths: Paths) -> int:
    from . import stages
    from .backtest import backtest

    cutoffs = [*(args.cutoff or []), *(args.cutoffs or [])]
    if not cutoffs:
        raise InsidersError("give at least one --cutoff DATE (or --cutoffs DATE,DATE,...)")
    target = db.resolve_target(paths)
    if args.input:
        stages.load_inputs(target, [Path(p) for p in args.input])
    for rows, errors in backtest(paths, target, cutoffs, _program_config(args), _cluster_config(args)):
        first = rows.iloc[0]
        print(f"cutoff {first.cutoff_date}, next {first.horizon_days} days; the Insiders are chosen by "
              f"{first.insider_definition}")
        print(f"  {'rule':<22}{'customers':>10}{'share of future revenue (95% CI)':>36}{'lift':>7}"
              f"{'Insiders minus rule (95% CI)':>32}")
        for row in rows.itertuples():
            print(f"  {row.rule:<22}{row.n_customers:>10,}{row.future_revenue_share:>14.1%} "
                  f"[{row.future_revenue_share_low:.1%}, {row.future_revenue_share_high:.1%}]"
                  f"{row.lift:>9.2f}{row.share_difference_vs_insiders * 100:>+14.1f} pt "
                  f"[{row.share_difference_low * 100:+.1f}, {row.share_difference_high * 100:+.1f}]")
        print(f"  forecast: {errors['predicted_revenue']:,.0f} predicted against {errors['actual_revenue']:,.0f} "
              f"actual gross purchases ({errors['revenue_error_share']:+.1%}); purchase days "
              f"{errors['predicted_purchases']:,.0f} against {errors['actual_purchases']:,.0f}; "
              f"{errors['seconds']:.0f} s")
    return 0


def _cmd_report(args: argparse.Namespace, paths: Paths) -> int:
    from .report import write_report

    with db.connect(db.resolve_target(paths)) as conn:
        out = write_report(conn, Path(args.out), args.as_of)
    print(f"report written to {out}")
    return 0


def _cmd_run(args: argparse.Namespace, paths: Paths) -> int:
    from . import stages
    from .demo_data import generate

    timer = StageTimer()
    started = time.perf_counter()
    with timer.stage("database"):
        target = db.resolve_target(paths)
        log.info("target %s%s", target.safe_url, " (embedded)" if target.embedded else "")
    inputs = [Path(p) for p in args.input]
    if not inputs:
        demo = paths.state_dir / "demo" / "demo_invoices.csv"
        if not demo.exists():
            with timer.stage(f"demo data ({DEMO_LINES:,} synthetic lines, seed {DEMO_SEED})"):
                generate(demo, n_lines=DEMO_LINES, seed=DEMO_SEED)
        inputs = [demo]
    with timer.stage("load"):
        loaded, rejected = stages.load_inputs(target, inputs)
    with db.connect(target) as conn:
        as_of = args.as_of or stages.data_span(conn)[1]
    program = _program_config(args)
    with timer.stage("dbt build (features)"):
        stages.build_features(paths, target, [as_of], program, rebuild=[as_of])
    with timer.stage("segments, forecast and Insiders"):
        labels = _label(target, paths, as_of, args)
    with timer.stage("dbt build (segment marts)"):
        stages.build_marts(paths, target, args.as_of)
    summary: dict[str, object] = {"lines loaded": loaded, "rejected": rejected, **_summary(target, as_of)}
    summary["segments"] = len(labels.summary)
    summary["Insiders"] = (f"{labels.n_insiders:,} by {labels.insider_definition} "
                           f"({labels.insider_customer_share:.1%} of customers, "
                           f"{labels.insider_revenue_share:.1%} of revenue)")
    log.info("done in %.1f s: %s", time.perf_counter() - started,
             ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in summary.items()))
    log.info("stage timings: %s", ", ".join(f"{k} {v:.1f} s" for k, v in timer.timings.items()))
    return 0


def _summary(target: Target, as_of: date) -> dict[str, object]:
    with db.connect(target) as conn:
        row = conn.execute(
            "select count(*), coalesce(sum(gross_revenue), 0), max(as_of_date) from fct_customer_features"
            " where as_of_date = %s", (as_of,),
        ).fetchone()
    return {"customers": row[0], "gross revenue": f"{row[1]:,.2f}", "as of": row[2]}


def _add_cluster_options(p: argparse.ArgumentParser, refit: bool = True) -> None:
    if refit:
        p.add_argument("--refit", action="store_true",
                       help="fit a new clustering model instead of scoring with the one in force")
    p.add_argument("--algorithms", help="comma-separated: kmeans,ward,gmm,dbscan,hdbscan (default kmeans,ward)")
    p.add_argument("--embeddings", help="comma-separated: scaled,pca,umap,tree (default scaled)")
    p.add_argument("--k-min", type=int, help="smallest k in the grid (default 2)")
    p.add_argument("--k-max", type=int, help="largest k in the grid (default 12)")
    p.add_argument("--seed", type=int, help="random seed (default 42)")
    p.add_argument("--map", dest="map_embedding", choices=["pca", "tsne"],
                   help="2-D customer map: pca (default, fitted with the model) or tsne (picture only, per run)")
    _add_program_options(p)


def _add_program_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--program-share", type=float,
                   help="the Insiders program's size as a share of the customers known at the as-of date "
                        "(default 0.15)")
    p.add_argument("--horizon", dest="horizon_days", type=int,
                   help="days of future revenue the Insiders are chosen and judged on (default 90)")
    p.add_argument("--definitions", help="comma-separated candidate definitions of the Insiders to compare "
                                         "(default: all)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="insiders", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("db", help="manage the embedded PostgreSQL (or show the configured one)")
    p.add_argument("action", choices=["start", "stop", "status", "url", "roles"])
    p.set_defaults(func=_cmd_db)

    p = sub.add_parser("load", help="load invoice files (CSV, XLSX, Parquet) into the raw invoice lines")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--sheet", help="XLSX: load only this sheet (default: every sheet)")
    p.add_argument("--replace", action="store_true", help="reload a file whose content is already loaded")
    p.set_defaults(func=_cmd_load)

    p = sub.add_parser("demo-data", help="write deterministic synthetic invoice lines in the UCI layout")
    p.add_argument("--lines", type=int, default=DEMO_LINES)
    p.add_argument("--seed", type=int, default=DEMO_SEED)
    p.add_argument("--out", required=True, help="output file, .csv or .parquet")
    p.add_argument("--truth", help="personas file (default: OUT's name with .personas.csv)")
    p.set_defaults(func=_cmd_demo_data)

    p = sub.add_parser("dbt", help="run dbt against the same database (e.g. `insiders dbt build`)")
    p.add_argument("dbt_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_dbt)

    p = sub.add_parser("sqlfluff", help="run sqlfluff with the dbt templater against the same database")
    p.add_argument("sqlfluff_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_sqlfluff)

    p = sub.add_parser("run", help="the whole pipeline: database, load, dbt build, clustering, summaries")
    p.add_argument("--input", nargs="*", default=[], metavar="FILE", help="invoice files (default: demo data)")
    p.add_argument("--as-of", type=date.fromisoformat, help="feature cutoff date (default: last invoice date)")
    _add_cluster_options(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("backfill", help="features and segments for every month-end of a range")
    p.add_argument("--from", dest="start", type=date.fromisoformat, required=True, help="first date (month-end)")
    p.add_argument("--to", dest="end", type=date.fromisoformat, required=True, help="last date")
    p.add_argument("--monthly", action="store_true", help="every month-end between --from and --to, and --to")
    p.add_argument("--refit", action="store_true",
                   help="fit a new model at the first date even if one fitted on earlier data exists")
    _add_cluster_options(p, refit=False)
    p.set_defaults(func=_cmd_backfill)

    p = sub.add_parser("backtest", help="what the product would have picked at a past cutoff, against what followed")
    p.add_argument("--cutoff", type=date.fromisoformat, action="append", help="cutoff date (repeatable)")
    p.add_argument("--cutoffs", type=lambda text: [date.fromisoformat(d.strip()) for d in text.split(",")],
                   default=[], help="several cutoffs, comma-separated")
    p.add_argument("--input", nargs="*", default=[], metavar="FILE", help="invoice files to load first")
    _add_cluster_options(p, refit=False)
    p.set_defaults(func=_cmd_backtest, refit=False)

    p = sub.add_parser("report", help="write a self-contained HTML dashboard from the marts")
    p.add_argument("--out", default="insiders-report.html", help="output file (default insiders-report.html)")
    p.add_argument("--as-of", type=date.fromisoformat, help="as-of date to show (default: the latest)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("cluster", help="segment the feature mart: fit once, then score with the saved model")
    p.add_argument("--as-of", type=date.fromisoformat, help="as-of date to segment (default: the latest)")
    _add_cluster_options(p)
    p.set_defaults(func=_cmd_cluster)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return int(args.func(args, Paths.resolve()) or 0)
    except InsidersError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
