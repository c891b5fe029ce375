"""Which engine dbt runs on: PostgreSQL (the default: the embedded server or INSIDERS_DSN) or a local Spark session.

The same dbt project serves both (what differs lives in dispatched macros); this module turns an engine's name into
the dbt target that `dbt_runner` runs against, so that the CLI only names the engine.
"""

from __future__ import annotations

import glob
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Protocol

from .errors import InsidersError
from .settings import Paths, Target

ENGINES = ("postgres", "spark")
# the profile's output for the local Spark session (profiles.yml.example); its schemas are prefixed spark_*
SPARK_TARGET = "spark"


class DbtTarget(Protocol):
    """What dbt_runner needs of a target: its dbt target name, a key for its parsed manifest, its environment."""

    @property
    def name(self) -> str: ...

    @property
    def url(self) -> str: ...

    def dbt_env(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class SparkTarget:
    """A local Spark session (dbt-spark, method session): the warehouse and its metastore under the state
    directory, the invoice files read where they lie."""

    spark_dir: Path
    invoice_path: str = ""
    name: str = SPARK_TARGET
    # a backtest's scratch build reads the lines invoiced up to this date only (macros/invoice_files.sql)
    lines_through: date | None = None

    @property
    def url(self) -> str:
        # another target (a backtest's scratch schemas) shares the session, not the schemas nor a parsed manifest
        return f"spark-session:{self.spark_dir}" + ("" if self.name == SPARK_TARGET else f" (target {self.name})")

    def dbt_env(self) -> dict[str, str]:
        # Spark's Python workers (the job's pandas UDFs) run this Python, with this environment's packages
        env = {"INSIDERS_TARGET": self.name, "INSIDERS_SPARK_DIR": str(self.spark_dir),
               "INSIDERS_SPARK_LOG4J": str(resources.files("insiders").joinpath("spark/log4j2.properties")),
               "PYSPARK_PYTHON": sys.executable,
               # always set, so that a value left in the caller's environment never filters a whole build
               "INSIDERS_INVOICE_LINES_THROUGH": self.lines_through.isoformat() if self.lines_through else ""}
        if self.invoice_path:
            env["INSIDERS_INVOICE_PATH"] = self.invoice_path
        return env


def spark_target(paths: Paths, inputs: Sequence[str | Path] = ()) -> SparkTarget:
    """The local Spark session of this state directory, reading `inputs` (one path: a file, a directory or a
    glob; Spark reads them where they lie)."""
    if len(inputs) > 1:
        raise InsidersError("Spark reads one path (a file, a directory or a glob such as 'invoices/*.csv'); "
                            f"got {len(inputs)}")
    invoice_path = str(Path(inputs[0]).expanduser().absolute()) if inputs else ""
    if invoice_path and not glob.glob(invoice_path):
        raise InsidersError(f"{inputs[0]}: no such file or directory (Spark reads a file, a directory or a glob)")
    return SparkTarget(spark_dir=paths.state_dir / "spark", invoice_path=invoice_path)


def dbt_target(engine: str, paths: Paths, inputs: Sequence[str | Path] = ()) -> Target | SparkTarget:
    """The target dbt runs against for `engine`."""
    if engine == "spark":
        return spark_target(paths, inputs)
    if engine != "postgres":
        raise InsidersError(f"unknown engine {engine!r}: one of {', '.join(ENGINES)}")
    if inputs:
        raise InsidersError("--input is for Spark, which reads the files where they lie; on PostgreSQL, "
                            "`insiders load FILE` first")
    from . import db

    return db.resolve_target(paths)
