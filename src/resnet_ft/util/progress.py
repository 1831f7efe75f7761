"""Progress for long loops: a rich bar on a terminal, a few plain lines otherwise."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Tracker:
    """Counts completed items of one task; reports rate and ETA."""

    def __init__(self, console: Console, description: str, total: int, unit: str) -> None:
        self.console, self.description, self.total, self.unit = console, description, total, unit
        self.done = 0
        self.start = time.perf_counter()
        self._next_plain = 0.25
        self._bar: Progress | None = None
        self._task = None

    def advance(self, count: int) -> None:
        """Record ``count`` more items done."""
        self.done += count
        if self._bar is not None:
            self._bar.update(self._task, advance=count, rate=self.rate)
        elif self.total and self.done / self.total >= self._next_plain and self.done < self.total:
            self._next_plain += 0.25
            self.console.print(
                f"{self.description}: {self.done}/{self.total} ({self.rate:.1f} {self.unit}/s)"
            )

    @property
    def rate(self) -> float:
        """Items per second so far."""
        return self.done / max(time.perf_counter() - self.start, 1e-9)


@contextlib.contextmanager
def track(
    console: Console, description: str, total: int, unit: str = "img", *, plain: bool = True
) -> Iterator[Tracker]:
    """A progress bar (terminal) or quarter-way lines (pipes, logs) around a loop.

    ``plain=False`` prints nothing when not on a terminal, for loops that
    report their own summary line (training epochs).
    """
    tracker = Tracker(console, description, total, unit)
    if not plain:
        tracker._next_plain = float("inf")
    if console.is_terminal:
        bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.1f} " + unit + "/s"), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True,
        )
        tracker._bar, tracker._task = bar, bar.add_task(description, total=total, rate=0.0)
        with bar:
            yield tracker
    else:
        yield tracker
    if total and plain:
        console.print(
            f"{description}: {tracker.done}/{total} in {time.perf_counter() - tracker.start:.1f} s "
            f"({tracker.rate:.1f} {unit}/s)"
        )
