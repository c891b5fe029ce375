"""Constants shared by the tests and their fixtures."""

from __future__ import annotations

from datetime import date

from insiders.program.config import ProgramConfig

# the as-of dates the tests label (demo data and the real file both end on 2011-12-09)
LABELLED_DATES = [date(2011, 9, 30), date(2011, 10, 31), date(2011, 12, 9)]
# the Insider choice without its slow candidates (a clustering and a model per inner cutoff): for tests whose
# subject is something else
QUICK_PROGRAM = ProgramConfig(candidates=("top_past_revenue", "rfm_score", "net_revenue", "decayed_revenue",
                                          "top_expected_revenue"))
