"""The program's configuration: its size is a business decision; everything else says how the choice is measured."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Every candidate definition of the Insiders is a ranking of the customers known at the as-of date; the program
# takes the top `program_share` of it.
SIMPLE_RULES = ("top_past_revenue", "rfm_score")
CANDIDATES = (
    "top_past_revenue",
    "rfm_score",
    "net_revenue",
    "decayed_revenue",
    "top_expected_revenue",
    "top_segment",
    "trained_model",
)


@dataclass(frozen=True)
class ProgramConfig:
    # The program's size: 15% of the customers known at the as-of date, about the share the clustering's top
    # segment held on the real file (15.9%), so marketing keeps the size it planned for. A business limit: the
    # run records it, and every rule is compared at this same size.
    program_share: float = 0.15
    # The future the program is judged on: revenue in the `horizon_days` after the as-of date.
    horizon_days: int = 90
    # Inner backtests, which choose the definition: month-ends, the latest one at least `horizon_days` before the
    # as-of date (so every horizon ends by it), at most `inner_cutoffs` of them, none with less than
    # `min_history_days` of data before it. Month-ends, so that every run of a month and every date of a backfill
    # shares them: each is measured once and kept in ml.inner_backtests.
    inner_cutoffs: int = 3
    min_history_days: int = 90
    # A challenger replaces the strongest simple rule only if it captured at least this much more future revenue
    # on average over the inner cutoffs and more at every one of them: on the real file the differences between
    # good rankings are a few tenths of a point, well inside the bootstrap noise (see README).
    min_share_gain: float = 0.005
    # ... and only on the evidence of at least this many inner backtests: with one year of data a cutoff in the
    # spring has two thin ones (three or four months of history each), and there the forecast's ranking won both
    # and then lost to top past revenue out of time (README, "How the Insiders are chosen")
    min_backtests_to_switch: int = 3
    candidates: tuple[str, ...] = CANDIDATES
    bootstrap_resamples: int = 1000
    seed: int = 42

    def __post_init__(self) -> None:
        unknown = [c for c in self.candidates if c not in CANDIDATES]
        if unknown:
            raise ValueError(f"unknown Insider definition: {', '.join(unknown)} (known: {', '.join(CANDIDATES)})")
        if not 0 < self.program_share < 1:
            raise ValueError("program_share must be between 0 and 1")
        if self.horizon_days < 1:
            raise ValueError("horizon_days must be at least 1")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def program_size(self, n_customers: int) -> int:
        return max(1, round(self.program_share * n_customers))
