"""`insiders mf`: MetricFlow over the semantic layer (models/marts/*/_*__semantic_models.yml), connected to the
same database as dbt.

mf reads the semantic manifest from `<dbt project>/target/semantic_manifest.json` whatever DBT_TARGET_PATH says,
and that manifest names the database in every relation. So each call first parses the project for the target
(dbt's partial parsing keeps that short; it also picks up YAML edited since the last build), then runs mf in a
project directory of its own under the state directory: a copy of dbt_project.yml and of the manifest just
written. The checkout's `target/` is left alone, and two state directories (a user's, a test session's) never
read each other's manifest.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .dbt_runner import dbt_target_path, run_dbt, run_tool
from .settings import Paths, Target

MANIFEST = "semantic_manifest.json"


def metricflow_project(paths: Paths, target: Target) -> Path:
    """Parse the dbt project for `target` and return the directory mf reads it from."""
    run_dbt(paths, target, ["--quiet", "parse"], quiet=True)
    parsed = dbt_target_path(paths)  # where that parse wrote
    project = paths.state_dir / "metricflow"
    (project / "target").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(paths.project_dir / "dbt_project.yml", project / "dbt_project.yml")
    shutil.copyfile(parsed / MANIFEST, project / "target" / MANIFEST)
    return project


def run_mf(paths: Paths, target: Target, args: list[str], *, quiet: bool = False,
           ) -> subprocess.CompletedProcess[str]:
    """Run `mf ARGS` against `target`, on the semantic manifest of the project as it is now."""
    project = metricflow_project(paths, target)
    return run_tool(paths, target, "mf", args, quiet=quiet, env={"DBT_PROJECT_DIR": str(project)})
