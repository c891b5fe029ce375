"""`insiders docs`: dbt's documentation site as one static HTML file, readable without a server.

`dbt docs generate --static` writes `static_index.html` with the manifest and the catalog inside it: models,
columns and their descriptions, tests, and the lineage from the sources through the marts to the exposures (the
clustering job and the dashboard). The catalog reads the database, so the columns are those actually built.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .dbt_runner import dbt_target_path, invoke_dbt
from .settings import Paths, Target


def generate_docs(paths: Paths, target: Target, out_dir: Path) -> Path:
    """Generate the docs against `target` and copy the static page to `out_dir/index.html`; returns its path."""
    invoke_dbt(paths, target, ["docs", "generate", "--static"])
    built = dbt_target_path(paths) / "static_index.html"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "index.html"
    # copied, not moved: dbt's own `docs serve` still finds its target directory whole
    shutil.copyfile(built, out)
    return Path(os.path.abspath(out))
