"""The report's view model: metric comparisons as display strings (units, signs, intervals).

Renderers (harness.report) and templates only place these strings; no arithmetic happens after
this step. Rows are ordered by how reliable their evidence is: counters, instructions, timing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.compare import Comparison, MetricComparison
from harness.environment import FINGERPRINT_KEYS, METADATA
from harness.metrics import METRICS
from harness.results import Results

NO_VALUE = "n/a"
TOP_ROWS = 15  # rows per query/function table: the vital few, not the trivial many

GROUPS = (
    ("counters", "Counters: exact or nearly so, the most reliable evidence"),
    ("instructions", "Instructions under valgrind"),
    ("timing", "Timing: judged on round values"),
)
# Thesis Figure 6.5 rows first, then percentiles and resources.
TIMING_ORDER = (
    "latency_mean", "latency_max", "latency_min", "latency_std", "throughput_kbps",
    "responses_per_s", "latency_p50", "latency_p90", "latency_p95", "latency_p99", "latency_p999",
    "service_mean", "cpu_seconds", "cpu_per_request", "rss_max",
    "loop_lag_mean", "loop_lag_p99", "loop_lag_max",
)
METRIC_ORDER = {name: i for i, name in enumerate(METRICS)}
OVERALL_TEXT = {
    "pass": "PASS",
    "regression": "REGRESSION: the build fails",
    "inconclusive": "INCONCLUSIVE",
    "refused": "REFUSED: the two sides were measured in different environments",
    "invalid": "INVALID: a run cannot be trusted",
}


# ---------------------------------------------------------------- number formatting


def _sig(value: float, digits: int = 3) -> str:
    """`value` with `digits` significant digits, no exponent, thousands separated."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def _scaled(value: float, units: Sequence[tuple[float, str]]) -> str:
    for factor, name in units:
        if abs(value) >= factor:
            return f"{_sig(value / factor)} {name}"
    return f"{_sig(value / units[-1][0])} {units[-1][1]}"


BYTE_UNITS = ((1024.0**3, "GB"), (1024.0**2, "MB"), (1024.0, "KB"), (1.0, "B"))
COUNT_UNITS = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""))


def format_value(value: float | None, unit: str) -> str:
    """A metric value for people: seconds as ms, bytes as KB/MB, rates with their unit."""
    if value is None:
        return NO_VALUE
    if unit in ("s", "s/req"):
        text = f"{_sig(value)} s" if abs(value) >= 10 else f"{_sig(value * 1000.0)} ms"
        return text + ("/req" if unit == "s/req" else "")
    if unit in ("B", "B/s"):
        return _scaled(value, BYTE_UNITS) + ("/s" if unit == "B/s" else "")
    if unit == "KB/s":
        return f"{value:,.1f} KB/s"
    if unit == "1/s":
        return f"{value:,.2f} /s"
    if unit == "instr":
        return _scaled(value, COUNT_UNITS).strip() + " instr"
    if unit == "count":
        return f"{value:,.0f}" if float(value).is_integer() else _sig(value)
    return f"{_sig(value)} {unit}".strip()


def format_change(change: float | None) -> str:
    """A relative change (fraction) as a signed percentage: +5.3%, -0.05%."""
    if change is None or not math.isfinite(change):
        return NO_VALUE
    percent = change * 100.0
    if percent == 0:
        return "0%"
    return f"{percent:+.2f}%" if abs(percent) < 1 else f"{percent:+.1f}%"


def format_interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return NO_VALUE
    return f"[{format_change(low)}, {format_change(high)}]"


def format_p(p: float | None) -> str:
    if p is None:
        return NO_VALUE
    return "<0.001" if p < 0.001 else f"{p:.2g}" if p < 0.01 else f"{p:.3f}"


def format_detectable(detectable: float | None) -> str:
    if detectable is None or not math.isfinite(detectable):
        return NO_VALUE
    return f"±{abs(detectable) * 100.0:.1f}%"


def _step_title(step: float | None) -> str:
    return "" if step is None else f"{step:g} req/s"


# ---------------------------------------------------------------- view model


@dataclass(frozen=True)
class MetricRow:
    """One metric as displayed: every cell already a string."""

    key: str
    label: str
    gate: bool
    baseline: str
    candidate: str
    change: str
    interval: str
    p_value: str
    p_raw: str
    detectable: str
    verdict: str
    evidence: str
    reason: str


@dataclass(frozen=True)
class StepTable:
    """The change table of one rate step (or of the whole run), grouped by kind of evidence."""

    title: str
    groups: tuple[tuple[str, tuple[MetricRow, ...]], ...]


def _group(m: MetricComparison) -> str:
    if m.unit == "instr" or m.metric.startswith("instructions"):
        return "instructions"
    return "counters" if m.kind == "counter" else "timing"


def _order(m: MetricComparison) -> tuple[int, int, float, str]:
    group = [g for g, _ in GROUPS].index(_group(m))
    if m.metric in TIMING_ORDER:
        position = TIMING_ORDER.index(m.metric)
    else:
        position = METRIC_ORDER.get(m.metric, len(METRIC_ORDER))
    return group, position, -1.0 if m.step is None else m.step, m.key


def _display_label(m: MetricComparison) -> str:
    # The registry's short labels ("average", "p99") read as the thesis' "Avg. response time".
    label = f"response time {m.label}" if m.metric.startswith("latency_") else m.label
    endpoint = re.search(r"\[([^\]]*)\]", m.key)
    return f"{label} [{endpoint.group(1)}]" if endpoint else label


def name_with_step(m: MetricComparison) -> str:
    label = _display_label(m)
    return label if m.step is None else f"{label} @ {_step_title(m.step)}"


def _evidence(m: MetricComparison) -> str:
    if m.verdict == "inconclusive" and m.rounds_needed:
        return f"{m.evidence}; about {m.rounds_needed} rounds per side would settle it"
    return m.evidence


def metric_row(m: MetricComparison) -> MetricRow:
    """Display strings for one metric comparison."""
    adjusted = m.p_adjusted if m.p_adjusted is not None else m.p_value
    return MetricRow(
        key=m.key, label=_display_label(m), gate=m.gate,
        baseline=format_value(m.baseline, m.unit), candidate=format_value(m.candidate, m.unit),
        change=format_change(m.change), interval=format_interval(m.ci_low, m.ci_high),
        p_value=format_p(adjusted), p_raw=format_p(m.p_value),
        detectable=format_detectable(m.detectable), verdict=m.verdict,
        evidence=_evidence(m), reason=m.reason,
    )


def ordered(metrics: Iterable[MetricComparison]) -> list[MetricComparison]:
    """Counters first (most reliable), then instructions, then timing in Figure 6.5 order."""
    return sorted(metrics, key=_order)


def step_tables(comparison: Comparison) -> list[StepTable]:
    """One table per rate step (whole-run metrics first), rows grouped by kind of evidence."""
    steps = sorted({m.step for m in comparison.metrics}, key=lambda s: (s is not None, s or 0.0))
    tables = []
    for step in steps:
        metrics = ordered(m for m in comparison.metrics if m.step == step)
        groups = tuple(
            (title, tuple(metric_row(m) for m in metrics if _group(m) == name))
            for name, title in GROUPS
        )
        title = _step_title(step) or ("whole run" if len(steps) > 1 else "")
        tables.append(StepTable(title, tuple((t, rows) for t, rows in groups if rows)))
    return tables


def safe_url(url: Any) -> str | None:
    # Only http(s) links: a javascript: URL from the environment must not become a link.
    return url if isinstance(url, str) and re.match(r"https?://", url) else None


def environment_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """Both sides' labels, experiment and recorded metadata; fingerprint mismatches marked."""
    base, cand = comparison.baseline, comparison.candidate
    rows = [
        ("label", base.label, cand.label, False),
        ("experiment", base.experiment.name, cand.experiment.name, False),
        ("created", base.created_at, cand.created_at, False),
        ("rounds (valid)", _rounds_text(base), _rounds_text(cand), False),
    ]
    for key in METADATA:
        b, c = base.environment.get(key.name), cand.environment.get(key.name)
        differs = key.name in FINGERPRINT_KEYS and b != c
        rows.append((key.name, NO_VALUE if b is None else str(b),
                     NO_VALUE if c is None else str(c), differs))
    rows += _code_rows(base, cand)
    return [
        {"name": n, "baseline": b, "candidate": c, "differs": d,
         "baseline_url": safe_url(b) if n == "jenkins_build_url" else None,
         "candidate_url": safe_url(c) if n == "jenkins_build_url" else None}
        for n, b, c, d in rows
    ]


def _code_rows(base: Results, cand: Results) -> list[tuple[str, str, str, bool]]:
    """Each side's code and environment (harness perf records them in session["code"])."""
    codes = [r.session.get("code") or {} for r in (base, cand)]
    if not any(codes):
        return []

    def code(c: dict) -> str:
        text = (c.get("commit") or "")[:12] or NO_VALUE
        return text + (" + uncommitted changes" if c.get("uncommitted_changes") else "")

    envs = [c.get("environment") or {} for c in codes]
    rows = [("subject code", code(codes[0]), code(codes[1]), False),
            ("subject Python", envs[0].get("python_version", NO_VALUE),
             envs[1].get("python_version", NO_VALUE), False),
            ("subject dependencies from", ", ".join(envs[0].get("built_from", ())) or NO_VALUE,
             ", ".join(envs[1].get("built_from", ())) or NO_VALUE, False)]
    packs = [e.get("packages", {}) for e in envs]
    for name in sorted(set(packs[0]) | set(packs[1])):
        if packs[0].get(name) != packs[1].get(name):
            rows.append((f"package {name}", packs[0].get(name, NO_VALUE),
                         packs[1].get(name, NO_VALUE), False))
    return rows


def _rounds_text(results: Results) -> str:
    valid = sum(1 for r in results.rounds if r.valid)
    return f"{len(results.rounds)} ({valid})"


def inconclusive_gated(comparison: Comparison) -> list[str]:
    """One line per gated metric that could not be decided, with the rounds that would settle it."""
    out = []
    for m in ordered(comparison.gated):
        if m.verdict != "inconclusive":
            continue
        needs = (f"; about {m.rounds_needed} rounds per side would settle it"
                 if m.rounds_needed else "")
        out.append(f"{name_with_step(m)}: could only detect {format_detectable(m.detectable)}, "
                   f"minimum change that matters {format_change(m.min_change).lstrip('+')}{needs}")
    return out


def _seconds(value: Any) -> str:
    return format_value(float(value), "s") if isinstance(value, (int, float)) else NO_VALUE


def _signed_seconds(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return NO_VALUE
    return ("+" if value > 0 else "-" if value < 0 else "±") + format_value(abs(value), "s")


def _count(value: Any) -> str:
    return format_value(float(value), "count") if isinstance(value, (int, float)) else NO_VALUE


def _signed_count(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return NO_VALUE
    return f"{value:+,.0f}" if float(value).is_integer() else f"{value:+.3g}"


def _relative(base: Any, cand: Any) -> str:
    if not isinstance(base, (int, float)) or not isinstance(cand, (int, float)) or base == 0:
        return NO_VALUE
    return format_change(cand / base - 1.0)


def _statement_row(row: dict[str, Any]) -> dict[str, Any]:
    calls, total = row.get("calls"), row.get("total")
    average = total / calls if isinstance(total, (int, float)) and calls else None
    callers = [f"{c.get('where', '?')} ({_seconds(c.get('total'))}, {_count(c.get('calls'))} calls)"
               for c in row.get("callers", [])[:5]]
    return {
        "statement": str(row.get("statement", "")), "operation": str(row.get("operation", "")),
        "calls": _count(calls), "total": _seconds(total), "max": _seconds(row.get("max")),
        "average": _seconds(average), "min": _seconds(row.get("min")),
        "rows": _count(row.get("rows")), "callers": callers,
    }


def _change_row(row: dict[str, Any], name_key: str) -> dict[str, Any]:
    return {
        "name": str(row.get(name_key, "")), "operation": str(row.get("operation", "")),
        "baseline_total": _seconds(row.get("baseline_total")),
        "candidate_total": _seconds(row.get("candidate_total")),
        "total_change": _signed_seconds(row.get("total_change")),
        "total_relative": _relative(row.get("baseline_total"), row.get("candidate_total")),
        "baseline_calls": _count(row.get("baseline_calls")),
        "candidate_calls": _count(row.get("candidate_calls")),
        "calls_change": _signed_count(row.get("calls_change")),
        "top_caller": str(row.get("top_caller") or ""),
    }


def _by_total(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: -float(r.get("total") or 0.0))


def queries_view(details: dict[str, Any]) -> dict[str, Any] | None:
    """The query breakdown (thesis Tables 6.4/6.5) and the "what changed" rankings, as strings."""
    queries = details.get("queries")
    if not queries:
        return None
    sides = {}
    for side in ("baseline", "candidate"):
        rows = _by_total(list(queries.get(side) or []))
        sides[side] = {"rows": [_statement_row(r) for r in rows[:TOP_ROWS]],
                       "hidden": max(0, len(rows) - TOP_ROWS)}
    return {
        "sides": sides,
        "changes": [_change_row(r, "statement") for r in (queries.get("changes") or [])[:10]],
        "caller_changes": [_change_row(r, "where")
                           for r in (queries.get("caller_changes") or [])[:10]],
    }


def functions_view(details: dict[str, Any]) -> list[dict[str, str]] | None:
    """Functions whose instructions per request changed most (harness.instructions).

    `change` in the data is candidate minus baseline in instructions per request; the relative
    change is against the baseline's count of that function (none for a new function).
    """
    functions = details.get("functions")
    if not functions:
        return None
    rows = []
    for f in functions[:TOP_ROWS * 2]:
        before, change = f.get("baseline"), f.get("change")
        relative = change / before if before and change is not None else None
        sign = "+" if change is not None and change > 0 else ""
        rows.append({
            "endpoint": str(f.get("endpoint", "")),
            "function": str(f.get("function", "")),
            "baseline": format_value(before, "instr"),
            "candidate": format_value(f.get("candidate"), "instr"),
            "change": NO_VALUE if change is None else sign + format_value(change, "instr"),
            "relative": format_change(relative),
        })
    return rows
