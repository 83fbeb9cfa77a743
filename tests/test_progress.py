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


def test_the_time_left_follows_the_mean_pace_of_the_rounds_so_far():
    from harness.progress import estimate_left, time_left_text

    assert estimate_left(0, 16, []) is None
    assert estimate_left(4, 16, [10.0, 12.0, 11.0, 11.0]) == 12 * 11.0
    assert estimate_left(20, 16, [10.0]) == 0.0
    assert time_left_text(None) == "time left known after the first round"
    assert time_left_text(42.4) == "about 42 s left"
    assert time_left_text(132.0) == "about 2 min 10 s left"
    assert time_left_text(179.0) == "about 3 min left"
