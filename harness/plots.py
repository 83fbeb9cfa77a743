"""Plots of a comparison: baseline and candidate side by side on equal scales, as PNG files.

Every function takes plain data (built by harness.report from the results) and returns the path of
the PNG it wrote. Figures are drawn on matplotlib's Agg canvas without pyplot, so no global state
or GUI backend is involved and each figure is rendered exactly once.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from harness.files import atomic_write_bytes

PANEL_WIDTH = 5.2  # inches per side
ROW_HEIGHT = 2.8
DPI = 96
STEP_COLOURS = ("#1f5fa8", "#d9730d", "#2e8540", "#b3261e", "#6f42c1", "#7a5a2f", "#0f7f8c")
OFFERED_COLOUR = "#555555"


@dataclass(frozen=True)
class Series:
    """One round's (or one step's) points: x and y of equal length, and the rate step if any."""

    x: Sequence[float]
    y: Sequence[float]
    step: float | None = None


@dataclass(frozen=True)
class Side:
    """Everything one side contributes to one plot: its label and its series."""

    label: str
    series: tuple[Series, ...]


def _text(value: str) -> str:
    # Labels come from users (branch names); a "$" would switch matplotlib into math mode.
    return value.replace("$", r"\$")


def _step_name(step: float | None) -> str:
    return "" if step is None else f"{step:g} req/s"


def _steps(*sides: Side) -> list[float | None]:
    found = {s.step for side in sides for s in side.series}
    return sorted(found, key=lambda v: (v is not None, v or 0.0))


def _colour(steps: list[float | None], step: float | None) -> str:
    return STEP_COLOURS[steps.index(step) % len(STEP_COLOURS)]


def _figure(rows: int) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(2 * PANEL_WIDTH, ROW_HEIGHT * rows + 0.6), dpi=DPI)
    axes = fig.subplots(rows, 2, sharex="row", sharey="row", squeeze=False)
    return fig, axes


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def side_title(role: str, label: str, what: str) -> str:
    """A panel's title: the side's label and what is plotted, e.g. "main: response time".

    The role ("baseline", "candidate") is added only when the label does not already say it, so
    a comparison of two default labels never reads "baseline: baseline".
    """
    name = label if role in label else f"{role} {label}"
    return f"{_text(name)}: {what}"


def _titles(axes: np.ndarray, baseline: Side, candidate: Side, what: str) -> None:
    axes[0][0].set_title(side_title("baseline", baseline.label, what), fontsize=10)
    axes[0][1].set_title(side_title("candidate", candidate.label, what), fontsize=10)


def _empty(ax, message: str = "no data") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#777777")


def response_times(baseline: Side, candidate: Side, path: Path) -> Path:
    """Latency (ms) against intended send time (s), all rounds of a side, one row per rate step."""
    return _save(response_times_figure(baseline, candidate), path)


def response_times_figure(baseline: Side, candidate: Side) -> Figure:
    steps = _steps(baseline, candidate) or [None]
    fig, axes = _figure(len(steps))
    for row, step in enumerate(steps):
        for col, side in enumerate((baseline, candidate)):
            ax = axes[row][col]
            points = [s for s in side.series if s.step == step and len(s.x)]
            for s in points:
                ax.plot(s.x, np.asarray(s.y, dtype=float) * 1000.0, linestyle="none", marker=".",
                        markersize=1.5, alpha=0.5, color=_colour(steps, step))
            if not points:
                _empty(ax)
            ax.set_xlabel("intended send time (s)")
            ax.set_ylabel(f"response time (ms) {_step_name(step)}".strip())
            ax.grid(True, alpha=0.3)
    top = _top(baseline, candidate) * 1000.0
    for row in axes:
        row[0].set_ylim(0, top)
    _titles(axes, baseline, candidate, "response time of each request")
    return fig


def _pooled(side: Side, step: float | None) -> np.ndarray:
    parts = [np.asarray(s.y, dtype=float) for s in side.series if s.step == step]
    return np.sort(np.concatenate(parts)) if parts else np.empty(0)


def ecdf(
    baseline: Side, candidate: Side, path: Path, *, xlabel: str, scale: float = 1000.0,
    what: str = "ECDF",
) -> Path:
    """Empirical CDF of the pooled values per rate step; x values are multiplied by `scale`."""
    return _save(ecdf_figure(baseline, candidate, xlabel=xlabel, scale=scale, what=what), path)


def ecdf_figure(baseline: Side, candidate: Side, *, xlabel: str, scale: float = 1000.0,
                what: str = "ECDF") -> Figure:
    steps = _steps(baseline, candidate) or [None]
    fig, axes = _figure(1)
    smallest, largest = np.inf, 0.0
    for col, side in enumerate((baseline, candidate)):
        ax = axes[0][col]
        drawn = False
        for step in steps:
            values = _pooled(side, step) * scale
            if not values.size:
                continue
            fractions = np.arange(1, values.size + 1) / values.size
            ax.plot(values, fractions, drawstyle="steps-post", color=_colour(steps, step),
                    label=_step_name(step) or None)
            positive = values[values > 0]
            if positive.size:
                smallest = min(smallest, float(positive[0]))
            largest = max(largest, float(values[-1]))
            drawn = True
        if not drawn:
            _empty(ax)
        elif len(steps) > 1:
            ax.legend(fontsize=8, loc="lower right")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction of samples")
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
    # Latencies are heavy-tailed: a log axis keeps the body readable when the tail is 100x longer.
    if np.isfinite(smallest) and largest / smallest > 100:
        for ax in axes.flat:
            ax.set_xscale("log")
    _titles(axes, baseline, candidate, what)
    return fig


def throughput(baseline: Side, candidate: Side, path: Path) -> Path:
    """Responses/s per round against the offered rate, with the theoretical maximum (y = x)."""
    return _save(throughput_figure(baseline, candidate), path)


def throughput_figure(baseline: Side, candidate: Side) -> Figure:
    fig, axes = _figure(1)
    offered = [x for side in (baseline, candidate) for s in side.series for x in s.x]
    top = max(offered, default=1.0) * 1.1
    for col, side in enumerate((baseline, candidate)):
        ax = axes[0][col]
        ax.plot([0, top], [0, top], linestyle="--", color=OFFERED_COLOUR,
                label="theoretical maximum (offered rate)")
        xs = [x for s in side.series for x in s.x]
        ys = [y for s in side.series for y in s.y]
        ax.plot(xs, ys, linestyle="none", marker="o", markersize=4, alpha=0.6,
                color=STEP_COLOURS[0], label="responses/s per round")
        medians = _medians(xs, ys)
        if medians:
            ax.plot([x for x, _ in medians], [y for _, y in medians], color=STEP_COLOURS[0],
                    label="median")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_xlabel("offered rate (requests/s)")
        ax.set_ylabel("responses/s")
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(True, alpha=0.3)
    _titles(axes, baseline, candidate, "responses per second")
    return fig


def _medians(xs: Sequence[float], ys: Sequence[float]) -> list[tuple[float, float]]:
    by_x: dict[float, list[float]] = {}
    for x, y in zip(xs, ys, strict=True):
        by_x.setdefault(x, []).append(y)
    return [(x, float(np.median(v))) for x, v in sorted(by_x.items())]


def _top(*sides: Side) -> float:
    peak = max((max(s.y) for side in sides for s in side.series if len(s.y)), default=0.0)
    return peak * 1.08 if peak > 0 else 1.0


def resources(rows: Sequence[tuple[str, Side, Side]], path: Path) -> Path:
    """Resource time series, a row per quantity (ylabel, baseline, candidate), a line per round."""
    return _save(resources_figure(rows), path)


def resources_figure(rows: Sequence[tuple[str, Side, Side]]) -> Figure:
    fig, axes = _figure(max(1, len(rows)))
    steps = _steps(*(side for _, b, c in rows for side in (b, c))) or [None]
    for row, (ylabel, baseline, candidate) in enumerate(rows):
        for col, side in enumerate((baseline, candidate)):
            ax = axes[row][col]
            for s in side.series:
                ax.plot(s.x, s.y, linewidth=0.8, alpha=0.6, color=_colour(steps, s.step))
            if not side.series:
                _empty(ax, "unavailable")
            ax.set_ylabel(ylabel)
            ax.set_xlabel("time since workload start (s)")
            ax.grid(True, alpha=0.3)
        # Explicit limits once both sides are drawn: equal scales, and a flat line stays visible.
        axes[row][0].set_ylim(0, _top(baseline, candidate))
    if rows:
        _titles(axes, rows[0][1], rows[0][2], "resources over each round")
    return fig
