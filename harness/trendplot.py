"""The trend plot of one history series: its nightly values, levels and detected steps, as PNG.

Drawn like harness.plots (matplotlib's Agg canvas without pyplot, a PNG file beside the report, no
inline data), so the HTML that shows it passes Jenkins' Content-Security-Policy.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from harness.files import atomic_write_bytes

if TYPE_CHECKING:  # harness.trends calls this module; the type is only needed for checking
    from harness.trends import SeriesAnalysis

DPI = 96
POINT = "#1f5fa8"
LEVEL = "#555555"
WORSE = "#b3261e"
BETTER = "#2e8540"
CANDIDATE = "#d9730d"
SCALE = {"s": (1000.0, "ms")}  # shown unit for stored units that read badly


def file_name(analysis: SeriesAnalysis) -> str:
    """trend-EXPERIMENT-PLATFORM-METRIC[-ENDPOINT][-STEP].png with only safe characters."""
    key = analysis.key
    parts = [key.experiment, key.platform, key.metric, key.endpoint, key.step]
    slug = "-".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", p) for p in parts if p)
    return f"trend-{slug}.png"


def _text(value: str) -> str:
    return value.replace("$", r"\$")  # a "$" would switch matplotlib into math mode


def trend_plot(analysis: SeriesAnalysis, path: Path, *, candidate: float | None = None,
               candidate_label: str = "this PR") -> Path:
    """Plot the series (one point per nightly run, oldest left), the median of each level between
    steps, a dashed line at each step (red: worse, green: better) and, when given, a candidate
    value as a horizontal marker; write it to `path` and return the path."""
    factor, unit = SCALE.get(analysis.unit, (1.0, analysis.unit))
    values = np.array([e.value for e in analysis.entries]) * factor
    x = np.arange(len(values))
    fig = Figure(figsize=(8.0, 3.2), dpi=DPI)
    ax = fig.add_subplot()
    ax.plot(x, values, "o-", color=POINT, markersize=3, linewidth=0.8, label="nightly")
    steps = analysis.detection.steps
    cuts = [0, *(s.index for s in steps), len(values)]
    for start, end in zip(cuts, cuts[1:], strict=False):
        if end > start:
            level = float(np.median(values[start:end]))
            ax.hlines(level, start, end - 1, colors=LEVEL, linewidth=1.6)
    for step in steps:
        colour = WORSE if analysis.worse(step) else BETTER
        ax.axvline((step.previous + step.index) / 2, color=colour, linestyle="--", linewidth=1)
        change = "from 0" if step.change is None else f"{step.change:+.1%}"
        ax.annotate(change, xy=((step.previous + step.index) / 2, float(values[step.index])),
                    xytext=(3, 6), textcoords="offset points", color=colour, fontsize=8)
    if candidate is not None:
        ax.axhline(candidate * factor, color=CANDIDATE, linewidth=1, linestyle=":",
                   label=_text(candidate_label))
    ticks = x if len(x) <= 12 else np.linspace(0, len(x) - 1, 12).round().astype(int)
    ax.set_xticks(ticks)
    ax.set_xticklabels([_tick(analysis, int(i)) for i in ticks], rotation=30, fontsize=7,
                       ha="right")
    ax.set_ylabel(unit)
    key = analysis.key
    ax.set_title(_text(f"{key.experiment} / {key.platform} / {key.name}"), fontsize=10)
    if not analysis.detection.enough:
        ax.text(0.5, 0.9, "too few points: no steps looked for", transform=ax.transAxes,
                ha="center", fontsize=8, color=LEVEL)
    ax.legend(fontsize=7, loc="best")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def _tick(analysis: SeriesAnalysis, index: int) -> str:
    entry = analysis.entries[index]
    build = f"#{entry.build} " if entry.build is not None else ""
    return _text(f"{build}{(entry.commit or '?')[:7]}")


def write_trend_plots(analyses: list[SeriesAnalysis], out_dir: Path) -> list[Path]:
    """One trend plot per series into `out_dir`, with the candidate's value where it has one."""
    return [trend_plot(a, Path(out_dir) / file_name(a), candidate=a.candidate,
                       candidate_label="candidate") for a in analyses]
