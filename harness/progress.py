"""Progress of a run: a live bar on a terminal, plain periodic lines in a log (Jenkins).

The only place in the library that prints; it writes to the stream it is given.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

PLAIN_EVERY = 10.0  # seconds between plain lines within a round (a Jenkins log stays readable)


class Progress:
    """Reports rounds and requests sent; `enabled=False` makes every call a no-op."""

    def __init__(self, total_rounds: int, *, enabled: bool = True, stream: IO[str] | None = None,
                 clock=time.monotonic) -> None:
        self.total_rounds, self.enabled = total_rounds, enabled
        self.stream = stream if stream is not None else sys.stdout
        self.clock = clock
        self._bar: Any = None
        self._task: Any = None
        self._next_line = 0.0
        self._label = ""
        if enabled and _is_terminal(self.stream):
            self._bar = _rich_progress(self.stream)

    def round_started(self, number: int, what: str) -> None:
        """Round `number` (1-based) starts; `what` says which side, step and phase."""
        if not self.enabled:
            return
        self._label = f"round {number}/{self.total_rounds} {what}"
        if self._bar is not None:
            if self._task is not None:
                self._bar.remove_task(self._task)
            self._task = self._bar.add_task(self._label, total=None)
        else:
            self._line(self._label)
            self._next_line = self.clock() + PLAIN_EVERY

    def requests(self, sent: int, planned: int) -> None:
        """Requests sent so far in the current phase (called often; output is rate-limited)."""
        if not self.enabled:
            return
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=sent, total=planned)
        elif self.clock() >= self._next_line or sent == planned:
            self._line(f"{self._label}: {sent}/{planned} requests sent")
            self._next_line = self.clock() + PLAIN_EVERY

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(text)
        else:
            self._line(text)

    def _line(self, text: str) -> None:
        print(f"[harness] {text}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _rich_progress(stream: IO[str]) -> Any:
    """A started rich progress display, or None when rich is not installed."""
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress
    except ImportError:
        return None
    bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), console=Console(file=stream), transient=False)
    bar.start()
    return bar


def estimate_left(done: int, total: int, seconds: list[float] | tuple[float, ...]) -> float | None:
    """Seconds the `total - done` items still to come take at the mean pace of the items timed
    so far (`seconds`), or None before any item was timed."""
    if not seconds:
        return None
    return max(0, total - done) * sum(seconds) / len(seconds)


def time_left_text(seconds: float | None) -> str:
    """'about 2 min 10 s left' for a progress line (10 s steps above a minute), or what is not
    known yet."""
    if seconds is None:
        return "time left known after the first round"
    if seconds < 60:
        return f"about {max(0, round(seconds))} s left"
    minutes, rest = divmod(int(round(seconds / 10.0)) * 10, 60)
    return f"about {minutes} min {rest} s left" if rest else f"about {minutes} min left"
