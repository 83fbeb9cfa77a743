"""Progress output: plain, rate-limited lines when the stream is not a terminal."""

from __future__ import annotations

import io

from harness.progress import PLAIN_EVERY, Progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_log_gets_plain_lines_at_most_every_few_seconds():
    stream, clock = io.StringIO(), FakeClock()
    with Progress(2, stream=stream, clock=clock) as progress:
        progress.round_started(1, "candidate at 5 req/s")
        for sent in range(1, 100):
            clock.now += PLAIN_EVERY / 40
            progress.requests(sent, 100)
        progress.requests(100, 100)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[harness] round 1/2 candidate at 5 req/s"
    assert lines[-1] == "[harness] round 1/2 candidate at 5 req/s: 100/100 requests sent"
    assert 2 <= len(lines) - 2 <= 3  # ~25 s of sending, one line per 10 s


def test_disabled_progress_prints_nothing():
    stream = io.StringIO()
    progress = Progress(1, enabled=False, stream=stream)
    progress.round_started(1, "x")
    progress.requests(1, 1)
    progress.message("hello")
    assert stream.getvalue() == ""
