"""The `insiders` command: one entry point for the database, loading, dbt, clustering and reports."""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import sys
import threading
import time
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import NoReturn

import psycopg

from . import __version__, db
from .engines import ENGINES
from .errors import InsidersError
from .locks import spark_warehouse_lock, writer_lock
from .preload import Preload
from .progress import StageTimer, setup_logging
from .settings import Paths, Target, configured_dsn

log = logging.getLogger("insiders")

DEMO_LINES = 500_000
DEMO_SEED = 42


def _cmd_db(args: argparse.Namespace, paths: Paths) -> int:
    from .embedded import EmbeddedServer

    if args.action != "url" and (args.role or args.show_password):
        log.error("--role and --show-password go with `insiders db url`")
        return 2
    if configured_dsn() and args.action in {"start", "stop"}:
        raise InsidersError("INSIDERS_DSN is set: the database is yours to start and stop, not the embedded one")
    server = EmbeddedServer(paths)
    if args.action == "start":
        target = server.start()
        print(f"embedded PostgreSQL running on 127.0.0.1:{target.port} (data in {server.pgdata})")
    elif args.action == "stop":
        print("embedded PostgreSQL stopped" if server.stop() else "embedded PostgreSQL was not running")
    elif args.action == "status":
        if configured_dsn():  # the server the commands use is the DSN's: describe that one, not the embedded one
            status = {"target": "INSIDERS_DSN", **db.describe_server(db.resolve_target(paths, start=False))}
            print(json.dumps(status, indent=2))
            return 0 if status["reachable"] else 3
        status = {"target": "embedded", **server.status()}
        print(json.dumps(status, indent=2))
        return 0 if status["running"] else 3
    elif args.action == "url":
        from .roles import role_target

        target = db.resolve_target(paths)
        if args.role:
            target = role_target(target, args.role, need_password=args.show_password)
        print(target.server_url if args.show_password else target.safe_url)
        if not args.show_password and target.password:
            log.info("password masked: `insiders db url --show-password` prints it")
    elif args.action == "roles":
        from .roles import create_roles

        create_roles(db.resolve_target(paths))
    return 0


def _cmd_load(args: argparse.Namespace, paths: Paths) -> int:
    from .load import load_file

    target = db.resolve_target(paths)
    files = []
    with db.connect(target) as conn:
        for path in args.files:
            result = load_file(conn, Path(path), sheet=args.sheet, replace=args.replace, progress=True)
            files.append({"file": str(result.path), "batch_id": result.batch_id,
                          "already_loaded": result.already_loaded, "lines_read": result.lines_read,
                          "lines_loaded": result.lines_loaded, "lines_duplicate": result.lines_duplicate,
                          "lines_rejected": result.lines_rejected,
                          "seconds": round(result.seconds, 1)})
    if args.json:
        _print_json({"files": files})
        return 0
    for row in files:
        state = "already loaded; " if row["already_loaded"] else ""
        print(f"{Path(str(row['file'])).name}: {state}read {row['lines_read']:,}, loaded {row['lines_loaded']:,}, "
              f"duplicate {row['lines_duplicate']:,}, rejected {row['lines_rejected']:,} (batch {row['batch_id']})")
    return 0


def _cmd_demo_data(args: argparse.Namespace, paths: Paths) -> int:
    from .demo_data import generate

    generate(Path(args.out), n_lines=args.lines, seed=args.seed, truth_out=Path(args.truth) if args.truth else None)
    return 0


def _cmd_dbt(args: argparse.Namespace, paths: Paths) -> int:
    from .dbt_runner import run_dbt
    from .engines import dbt_target

    target = dbt_target(args.engine, paths, [args.input] if args.input else [])
    return run_dbt(paths, target, args.dbt_args, check=False)


def _cmd_mf(args: argparse.Namespace, paths: Paths) -> int:
    from .semantic import run_mf

    return run_mf(paths, db.resolve_target(paths), args.mf_args).returncode


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
    from .warehouse import PostgresWarehouse

    with db.connect(target) as conn:
        return run_clustering(PostgresWarehouse(conn), paths, as_of=as_of, refit=args.refit,
                              config=_cluster_config(args), program=_program_config(args))


def _cmd_cluster(args: argparse.Namespace, paths: Paths) -> int:
    from . import stages

    timer = StageTimer()
    started = time.perf_counter()
    target = db.resolve_target(paths)
    with db.connect(target) as conn:
        as_of = args.as_of or stages.data_span(conn)[1]
    with timer.stage("dbt build (features)") as stage:
        stage.note = _built_note(stages.build_features(paths, target, [as_of], _program_config(args)))
    with timer.stage("segments, forecast and Insiders") as stage:
        labels = _label(target, paths, as_of, args)
        stage.note = _labels_note(labels)
    summary = {"as_of": as_of.isoformat(), **_labels_summary(labels), **_timings(started, timer)}
    if args.json:
        _print_json(summary)
    else:
        _print_summary(summary)
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
    if args.engine == "spark":  # the files are read where they lie (build_staging refuses a backtest without them)
        from .engines import spark_target

        target = spark_target(paths, args.input)
    else:
        target = db.resolve_target(paths)
        if args.input:
            with StageTimer().stage("load") as stage:
                loaded, rejected = stages.load_inputs(target, [Path(p) for p in args.input])
                stage.note = f"{loaded:,} lines loaded, {rejected:,} rejected"
    results = backtest(paths, target, cutoffs, _program_config(args), _cluster_config(args))
    if args.json:
        _print_json({"backtests": [{
            "cutoff": str(rows.iloc[0].cutoff_date), "horizon_days": int(rows.iloc[0].horizon_days),
            "insider_definition": rows.iloc[0].insider_definition,
            "rules": json.loads(rows.drop(columns=["cutoff_date", "horizon_days", "insider_definition"])
                                .to_json(orient="records")),
            "forecast": {name: float(value) for name, value in errors.items()},
        } for rows, errors in results]})
        return 0
    for rows, errors in results:
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


def _cmd_docs(args: argparse.Namespace, paths: Paths) -> int:
    from .docs import generate_docs

    out = generate_docs(paths, db.resolve_target(paths), Path(args.out) if args.out else paths.state_dir / "docs")
    print(f"dbt docs written to {out} (open it in a browser: one file, no server needed)")
    return 0


def _cmd_run(args: argparse.Namespace, paths: Paths) -> int:
    from . import stages

    if args.engine == "spark":
        return _run_on_spark(args, paths)
    timer = StageTimer()
    started = time.perf_counter()
    dbt_imported = Preload("dbt.cli.main")  # while the server starts and the files load
    with timer.stage("database") as stage:
        target = db.resolve_target(paths)
        stage.note = target.safe_url + (" (embedded)" if target.embedded else "")
    inputs = [Path(p) for p in args.input] or [_demo_file(paths, timer)]
    with timer.stage("load") as stage:
        loaded, rejected = stages.load_inputs(target, inputs)
        stage.note = f"{loaded:,} lines loaded, {rejected:,} rejected" if loaded or rejected else "nothing new"
    with db.connect(target) as conn:
        as_of = args.as_of or stages.data_span(conn)[1]
    program = _program_config(args)
    # the labelling stage's libraries (scikit-learn, SciPy), imported while the feature mart's statement runs
    modelling_imported = Preload("insiders.cluster.job", start=False)
    with timer.stage("dbt build (features)") as stage:
        dbt_imported.wait()
        stage.note = _built_note(stages.build_features(paths, target, [as_of], program, rebuild=[as_of],
                                                       on_feature_mart_start=modelling_imported.start))
        with db.connect(target) as conn:
            warnings = stages.quality_warnings(conn)
        if warnings:
            stage.note += f"; {len(warnings)} data-quality warning{'s' if len(warnings) > 1 else ''}"
    with timer.stage("segments, forecast and Insiders") as stage:
        modelling_imported.wait()
        labels = _label(target, paths, as_of, args)
        stage.note = _labels_note(labels)
    with timer.stage("dbt build (segment marts)"):
        stages.build_marts(paths, target, args.as_of)
    summary = {**_summary(target, as_of), "lines_loaded": loaded, "lines_rejected": rejected,
               **_labels_summary(labels), "warnings": warnings, **_timings(started, timer)}
    if args.json:
        _print_json(summary)
    else:
        _print_summary(summary)
    return 0


def _demo_file(paths: Paths, timer: StageTimer) -> Path:
    """The demo invoice lines under the state directory, written the first time."""
    from .demo_data import generate

    demo = paths.state_dir / "demo" / "demo_invoices.csv"
    if not demo.exists():
        with timer.stage("demo data") as stage:
            generate(demo, n_lines=DEMO_LINES, seed=DEMO_SEED)
            stage.note = f"{DEMO_LINES:,} synthetic lines, seed {DEMO_SEED}"
    return demo


def _run_on_spark(args: argparse.Namespace, paths: Paths) -> int:
    """`insiders run --engine spark`: the same stages on a local Spark session, the files read where they lie."""
    from . import spark_stages
    from .cluster.job import run_clustering
    from .engines import spark_target

    timer = StageTimer()
    started = time.perf_counter()
    target = spark_target(paths, args.input or [_demo_file(paths, timer)])
    with timer.stage("dbt build on Spark (staging)") as stage:
        warehouse = spark_stages.build_staging(paths, target)
        stage.note = target.url
    data_start, last_day = spark_stages.data_span(warehouse)
    as_of = args.as_of or last_day
    program = _program_config(args)
    with timer.stage("dbt build on Spark (features)") as stage:
        built = spark_stages.build_features(paths, target, as_of, data_start, program)
        stage.note = _built_note(built)
    with timer.stage("segments, forecast and Insiders") as stage:
        labels = run_clustering(warehouse, paths, as_of=as_of, refit=args.refit, config=_cluster_config(args),
                                program=program)
        stage.note = _labels_note(labels)
    with timer.stage("dbt build on Spark (segment marts)"):
        spark_stages.build_marts(paths, target, args.as_of)
    customers, gross_revenue = spark_stages.feature_totals(warehouse, as_of)
    summary = {"as_of": as_of.isoformat(), "engine": "spark", "customers": customers, "gross_revenue": gross_revenue,
               **_labels_summary(labels), **_timings(started, timer)}
    if args.json:
        _print_json(summary)
    else:
        _print_summary(summary)
    return 0


def _summary(target: Target, as_of: date) -> dict[str, object]:
    with db.connect(target) as conn:
        row = conn.execute(
            "select count(*), coalesce(sum(gross_revenue), 0), max(as_of_date) from fct_customer_features"
            " where as_of_date = %s", (as_of,),
        ).fetchone()
    return {"as_of": as_of.isoformat(), "customers": row[0], "gross_revenue": round(float(row[1]), 2)}


def _built_note(built: list[date]) -> str:
    if not built:
        return "features built already, kept"
    return f"features of {len(built)} as-of date{'s' if len(built) > 1 else ''} built"


def _labels_note(labels) -> str:
    return f"{'new model fitted' if labels.mode == 'fit' else 'model in force'}, {len(labels.summary)} segments"


def _labels_summary(labels) -> dict[str, object]:
    return {
        "segments": [{"segment_id": int(row.segment_id), "segment_name": row.segment_name,
                      "customers": int(row.n_customers), "customer_share": round(float(row.customer_share), 4),
                      "revenue_share": round(float(row.revenue_share), 4)} for row in labels.summary.itertuples()],
        "model": labels.mode,
        "insiders": labels.n_insiders,
        "insider_definition": labels.insider_definition,
        "insider_customer_share": round(labels.insider_customer_share, 4),
        "insider_revenue_share": round(labels.insider_revenue_share, 4),
    }


def _timings(started: float, timer: StageTimer) -> dict[str, object]:
    return {"seconds": round(time.perf_counter() - started, 1),
            "stage_seconds": {name: round(seconds, 1) for name, seconds in timer.timings.items()}}


def _print_json(summary: dict[str, object]) -> None:
    """The command's result as JSON: the only thing on stdout."""
    print(json.dumps(summary, indent=2, default=str))


def _print_summary(summary: dict[str, object]) -> None:
    """The summary in numbers, on stdout (the stage lines are on stderr)."""
    lines = [f"done in {summary['seconds']} s, as of {summary['as_of']}"]
    if "lines_loaded" in summary:
        lines.append(f"  lines loaded   {summary['lines_loaded']:,} ({summary['lines_rejected']:,} rejected)")
    if "customers" in summary:
        lines.append(f"  customers      {summary['customers']:,}, gross revenue {summary['gross_revenue']:,.2f}")
    segments = summary["segments"]
    lines.append(f"  segments       {len(segments)}")
    for row in segments:
        lines.append(f"    {row['segment_id']:>2} {row['segment_name']:<22} {row['customers']:>8,} customers "
                     f"({row['customer_share']:6.1%})  {row['revenue_share']:6.1%} of gross revenue")
    lines.append(f"  Insiders       {summary['insiders']:,} by {summary['insider_definition']} "
                 f"({summary['insider_customer_share']:.1%} of customers, "
                 f"{summary['insider_revenue_share']:.1%} of gross revenue)")
    for number, warning in enumerate(summary.get("warnings") or []):
        lines.append(f"  {'warnings' if number == 0 else '':<15}{warning}")
    print("\n".join(lines))


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


def _version() -> str:
    try:
        dbt = version("dbt-core")
    except PackageNotFoundError:
        dbt = "not installed"
    return f"insiders {__version__} (dbt-core {dbt}, Python {sys.version.split()[0]})"


def _examples(*lines: str) -> str:
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


def build_parser() -> argparse.ArgumentParser:
    # flags every command takes, before or after its name (`insiders -v run` and `insiders run -v`): a parent of
    # the top parser and of each subcommand; SUPPRESS keeps a subcommand from resetting what was given before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="detail: inner stages, debug lines and dbt's own log")
    # the commands whose result scripts read
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true",
                         help="print the summary as JSON on stdout (stage lines stay on stderr)")
    # the commands that write to the database: one at a time per database and target (locks.py)
    writer = argparse.ArgumentParser(add_help=False)
    writer.add_argument("--no-wait", action="store_true",
                        help="stop at once when another insiders command is writing (default: wait for it)")
    parser = argparse.ArgumentParser(prog="insiders", description=__doc__, parents=[common],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=_examples("insiders run", "insiders run --input 'Online Retail.xlsx' -v",
                                                      "insiders COMMAND --help"))
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, summary: str, *examples: str, parents: tuple[argparse.ArgumentParser, ...] = (common,),
                ) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=summary[:1].upper() + summary[1:] + ".",
                              parents=list(parents), epilog=_examples(*examples),
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = command("db", "manage the embedded PostgreSQL (or show the configured one)",
                "insiders db start", "insiders db url    # a postgresql:// URL, its password masked",
                "insiders db url --role bi --show-password    # Metabase's read-only login")
    p.add_argument("action", choices=["start", "stop", "status", "url", "roles"])
    p.add_argument("--role", choices=["analyst", "bi"],
                   help="url: the URL of a read-only role (insiders_analyst, insiders_bi; `insiders db roles`)")
    p.add_argument("--show-password", action="store_true",
                   help="url: print the password instead of *** (for the role: from INSIDERS_<ROLE>_PASSWORD)")
    p.set_defaults(func=_cmd_db)

    p = command("load", "load invoice files (CSV, XLSX, Parquet) into the raw invoice lines",
                "insiders load 'Online Retail.xlsx' --sheet 'Online Retail'", "insiders load lines.csv --json",
                parents=(common, as_json, writer))
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--sheet", help="XLSX: load only this sheet (default: every sheet)")
    p.add_argument("--replace", action="store_true", help="reload a file whose content is already loaded")
    p.set_defaults(func=_cmd_load, writes=True)

    p = command("demo-data", "write deterministic synthetic invoice lines in the UCI layout",
                "insiders demo-data --lines 100000 --seed 7 --out demo.csv")
    p.add_argument("--lines", type=int, default=DEMO_LINES)
    p.add_argument("--seed", type=int, default=DEMO_SEED)
    p.add_argument("--out", required=True, help="output file, .csv or .parquet")
    p.add_argument("--truth", help="personas file (default: OUT's name with .personas.csv)")
    p.set_defaults(func=_cmd_demo_data)

    p = command("dbt", "run dbt against the same database (e.g. `insiders dbt build`), or on a local Spark session",
                "insiders dbt build --select fct_customer_features",
                "insiders dbt --engine spark --input online_retail.parquet build --select +fct_customer_features",
                parents=())
    p.add_argument("--engine", choices=ENGINES, default="postgres",
                   help="postgres (default: the embedded server or INSIDERS_DSN) or spark (a local session, its "
                        "warehouse under the state directory)")
    p.add_argument("--input", metavar="PATH",
                   help="spark: the invoice file(s) read where they lie (a file, a directory or a glob)")
    p.add_argument("dbt_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_dbt)

    p = command("mf", "run MetricFlow on the semantic layer against the same database",
                "insiders mf query --saved-query insider_moves",
                "insiders mf query --metrics insiders_revenue_share --group-by metric_time__day", parents=())
    p.add_argument("mf_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_mf)

    p = command("sqlfluff", "run sqlfluff with the dbt templater against the same database",
                "insiders sqlfluff lint models tests/singular", parents=())
    p.add_argument("sqlfluff_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_sqlfluff)

    p = command("run", "the whole pipeline: database, load, dbt build, clustering, summaries",
                "insiders run                                  # the demo data",
                "insiders run --input 'Online Retail.xlsx' --as-of 2011-09-30 --json > summary.json",
                parents=(common, as_json, writer))
    p.add_argument("--input", nargs="*", default=[], metavar="FILE",
                   help="invoice files (default: demo data); spark: one path, read where it lies (a file, a "
                        "directory or a glob)")
    p.add_argument("--as-of", type=date.fromisoformat, help="feature cutoff date (default: last invoice date)")
    p.add_argument("--engine", choices=ENGINES, default="postgres",
                   help="postgres (default: the embedded server or INSIDERS_DSN) or spark (a local session, its "
                        "warehouse under the state directory)")
    _add_cluster_options(p)
    p.set_defaults(func=_cmd_run, writes=True)

    p = command("backfill", "features and segments for every month-end of a range",
                "insiders backfill --from 2011-01-31 --to 2011-12-09 --monthly", parents=(common, writer))
    p.add_argument("--from", dest="start", type=date.fromisoformat, required=True, help="first date (month-end)")
    p.add_argument("--to", dest="end", type=date.fromisoformat, required=True, help="last date")
    p.add_argument("--monthly", action="store_true", help="every month-end between --from and --to, and --to")
    p.add_argument("--refit", action="store_true",
                   help="fit a new model at the first date even if one fitted on earlier data exists")
    _add_cluster_options(p, refit=False)
    p.set_defaults(func=_cmd_backfill, writes=True)

    p = command("backtest", "what the product would have picked at a past cutoff, against what followed",
                "insiders backtest --cutoffs 2011-06-30,2011-09-09 --horizon 90",
                "insiders backtest --engine spark --input online_retail.parquet --cutoff 2011-09-09",
                parents=(common, as_json, writer))
    p.add_argument("--cutoff", type=date.fromisoformat, action="append", help="cutoff date (repeatable)")
    p.add_argument("--cutoffs", type=lambda text: [date.fromisoformat(d.strip()) for d in text.split(",")],
                   default=[], help="several cutoffs, comma-separated")
    p.add_argument("--input", nargs="*", default=[], metavar="FILE",
                   help="invoice files to load first; spark: one path, read where it lies (a file, a directory or "
                        "a glob)")
    p.add_argument("--engine", choices=ENGINES, default="postgres",
                   help="postgres (default: scratch databases on the same server) or spark (scratch schemas in the "
                        "local session's warehouse, the files read where they lie)")
    _add_cluster_options(p, refit=False)
    p.set_defaults(func=_cmd_backtest, refit=False, writes=True)

    p = command("report", "write a self-contained HTML dashboard from the marts",
                "insiders report --out insiders.html --as-of 2011-09-30")
    p.add_argument("--out", default="insiders-report.html", help="output file (default insiders-report.html)")
    p.add_argument("--as-of", type=date.fromisoformat, help="as-of date to show (default: the latest)")
    p.set_defaults(func=_cmd_report)

    p = command("docs", "write dbt's docs as one static HTML file: models, columns, tests and the lineage from the "
                        "sources to the ML job and the dashboard",
                "insiders docs                    # .insiders/docs/index.html", "insiders docs --out site/")
    p.add_argument("--out", metavar="DIR", help="directory to write index.html in (default .insiders/docs)")
    p.set_defaults(func=_cmd_docs)

    p = command("cluster", "segment the feature mart: fit once, then score with the saved model",
                "insiders cluster --as-of 2011-09-30", "insiders cluster --refit --algorithms kmeans,gmm --json",
                parents=(common, as_json, writer))
    p.add_argument("--as-of", type=date.fromisoformat, help="as-of date to segment (default: the latest)")
    _add_cluster_options(p)
    p.set_defaults(func=_cmd_cluster, writes=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    setup_logging(verbose)
    try:
        paths = Paths.resolve()
        if not getattr(args, "writes", False):
            return int(args.func(args, paths) or 0)
        if getattr(args, "engine", "postgres") == "spark":
            with spark_warehouse_lock(paths.state_dir / "spark", args.command, wait=not args.no_wait):
                return int(args.func(args, paths) or 0)
        with writer_lock(db.resolve_target(paths), args.command, wait=not args.no_wait):
            return int(args.func(args, paths) or 0)
    except InsidersError as exc:
        log.debug("traceback of the error below", exc_info=True)  # -v: where it came from
        log.error("%s", exc)
        return 1
    except psycopg.OperationalError as exc:  # the database went away between two of our statements
        log.debug("the database connection failed", exc_info=True)
        log.error("the database is unreachable: %s", str(exc).strip().splitlines()[0])
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `insiders … | head`: the reader left; Python's own flush at exit must not fail too
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 141


def entry() -> NoReturn:
    """The `insiders` command: main(), then out of the process without Python's teardown of its modules, which
    frees dbt's parsed project, pandas' frames and every other object one by one (0.8 s of a 24 s day's run at 10
    million lines) when the operating system takes the memory back at once. What the interpreter does first at
    exit is done as it would be: its threading shutdown (executors told to stop, threads that are not daemons
    joined) and the exit handlers (logging's flush of dbt's log file among them); then the output is flushed."""
    code = main()
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # the interpreter's own first step at exit
        atexit._run_exitfuncs()
    except KeyboardInterrupt:  # Ctrl-C while a thread finished: out, as main() would have
        code = 130
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # the reader left (or the stream was closed): nothing left to say
            code = code or 141
    os._exit(code)


if __name__ == "__main__":
    entry()
