"""Plots: PNG files written, both sides on equal scales, user labels drawn as text."""

from __future__ import annotations

import random

from harness import plots

PNG = b"\x89PNG\r\n\x1a\n"


def _side(label: str, scale: float, rounds: int = 3, n: int = 200, steps=(5.0,)) -> plots.Side:
    rng = random.Random(label)
    return plots.Side(label, tuple(
        plots.Series(x=[i / step for i in range(n)],
                     y=[scale * rng.expovariate(100.0) for _ in range(n)], step=step)
        for _ in range(rounds) for step in steps
    ))


def test_response_times_share_one_scale_when_the_candidate_is_slower():
    fig = plots.response_times_figure(_side("main", 1.0), _side("feature", 5.0))
    left, right = fig.axes
    assert left.get_ylim() == right.get_ylim()
    assert left.get_xlim() == right.get_xlim()
    top = left.get_ylim()[1]
    slowest = max(y for s in _side("feature", 5.0).series for y in s.y) * 1000
    assert top >= slowest  # the slower side fits, nothing is cut off


def test_response_times_have_a_row_per_rate_step_on_one_scale():
    steps = (1.0, 5.0, 10.0)
    fig = plots.response_times_figure(_side("a", 1.0, steps=steps), _side("b", 3.0, steps=steps))
    assert len(fig.axes) == 2 * len(steps)
    assert len({ax.get_ylim() for ax in fig.axes}) == 1


def test_ecdf_goes_to_one_on_equal_axes():
    fig = plots.ecdf_figure(_side("a", 1.0), _side("b", 2.0), xlabel="response time (ms)")
    left, right = fig.axes
    assert left.get_xlim() == right.get_xlim() and left.get_ylim() == right.get_ylim()
    for ax in (left, right):
        (line,) = ax.get_lines()
        fractions = line.get_ydata()
        assert fractions[-1] == 1.0
        assert all(a <= b for a, b in zip(fractions[:-1], fractions[1:], strict=True))


def test_ecdf_uses_a_log_axis_for_long_tails():
    tail = plots.Side("t", (plots.Series(x=[0, 1, 2], y=[0.001, 0.002, 1.0]),))
    fig = plots.ecdf_figure(tail, tail, xlabel="ms")
    assert fig.axes[0].get_xscale() == "log"


def test_throughput_draws_the_offered_rate_and_fits_both_sides():
    base = plots.Side("a", tuple(plots.Series([r], [r * 0.98], r) for r in (1, 2, 5, 10, 20)))
    cand = plots.Side("b", tuple(plots.Series([r], [min(r, 8.0)], r) for r in (1, 2, 5, 10, 20)))
    fig = plots.throughput_figure(base, cand)
    for ax in fig.axes:
        offered = ax.get_lines()[0]
        assert list(offered.get_xdata()) == list(offered.get_ydata())  # the y = x line
        assert ax.get_xlim()[1] >= 20 and ax.get_ylim() == fig.axes[0].get_ylim()


def test_resources_rows_share_a_scale_per_quantity():
    cpu_a = plots.Side("a", (plots.Series([0, 1, 2], [10, 20, 30]),))
    cpu_b = plots.Side("b", (plots.Series([0, 1, 2], [10, 50, 90]),))
    rss_a = plots.Side("a", (plots.Series([0, 1, 2], [40, 41, 42]),))
    rss_b = plots.Side("b", ())
    fig = plots.resources_figure([("CPU %", cpu_a, cpu_b), ("RSS (MB)", rss_a, rss_b)])
    cpu_left, cpu_right, rss_left, rss_right = fig.axes
    assert cpu_left.get_ylim() == cpu_right.get_ylim() and cpu_left.get_ylim()[1] >= 90
    assert rss_left.get_ylim() == rss_right.get_ylim() and rss_left.get_ylim()[1] < 90
    assert "unavailable" in [t.get_text() for t in rss_right.texts]


def test_every_function_writes_a_png_and_returns_its_path(tmp_path):
    a, b = _side("a", 1.0), _side("b", 2.0)
    written = [
        plots.response_times(a, b, tmp_path / "rt.png"),
        plots.ecdf(a, b, tmp_path / "ecdf.png", xlabel="ms"),
        plots.throughput(a, b, tmp_path / "tp.png"),
        plots.resources([("CPU %", a, b)], tmp_path / "res.png"),
    ]
    assert [p.name for p in written] == ["rt.png", "ecdf.png", "tp.png", "res.png"]
    assert all(p.read_bytes()[:8] == PNG for p in written)
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_labels_with_dollar_signs_and_empty_sides_still_plot(tmp_path):
    odd = plots.Side("fix-$HOME-$PATH", ())
    path = plots.response_times(odd, _side("b", 1.0), tmp_path / "odd.png")
    assert path.read_bytes()[:8] == PNG
    fig = plots.response_times_figure(odd, odd)
    assert fig.axes[0].get_title() == "baseline fix-\\$HOME-\\$PATH: response time of each request"


def test_titles_name_the_label_and_what_is_plotted_never_the_role_twice():
    fig = plots.ecdf_figure(_side("baseline", 1.0), _side("candidate", 2.0),
                            xlabel="response time (ms)", what="response time ECDF")
    assert [ax.get_title() for ax in fig.axes] == [
        "baseline: response time ECDF", "candidate: response time ECDF"]
    fig = plots.throughput_figure(_side("main", 1.0), _side("db=worker", 1.0))
    assert [ax.get_title() for ax in fig.axes] == [
        "baseline main: responses per second", "candidate db=worker: responses per second"]
