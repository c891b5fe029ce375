"""Constants shared by the tests and their fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest

from insiders.program.config import ProgramConfig

# the as-of dates the tests label (demo data and the real file both end on 2011-12-09)
LABELLED_DATES = [date(2011, 9, 30), date(2011, 10, 31), date(2011, 12, 9)]
# the Insider choice without its slow candidates (a clustering and a model per inner cutoff): for tests whose
# subject is something else
QUICK_PROGRAM = ProgramConfig(candidates=("top_past_revenue", "rfm_score", "net_revenue", "decayed_revenue",
                                          "top_expected_revenue"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRE_CHROMIUM = os.environ.get("INSIDERS_REQUIRE_CHROMIUM") == "1"


def render_in_chromium(page: Path, work_dir: Path) -> tuple[str, str]:
    """The page's DOM after its scripts ran, in headless Chromium, and Chromium's log; skips (or fails under
    INSIDERS_REQUIRE_CHROMIUM=1) when Chromium is not installed."""
    if CHROMIUM is None:
        if REQUIRE_CHROMIUM:
            pytest.fail("chromium is not installed; INSIDERS_REQUIRE_CHROMIUM=1 makes this a failure")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    dom = subprocess.run([CHROMIUM, *chromium_flags(work_dir), "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True)
    return dom.stdout, dom.stderr


def chromium_flags(work_dir: Path) -> list[str]:
    # a private profile and no background traffic: the page must render from the file alone
    return ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", f"--user-data-dir={work_dir / 'profile'}",
            "--enable-logging=stderr", "--v=0"]
