"""Renderers of a Comparison: report.html (+ CSS and PNG plots), summary.md, junit.xml, terminal table.

Every renderer only reads the harness.compare objects. A view-model step turns them into display
strings (numbers with units, signed changes, intervals) so the templates do no arithmetic; the
HTML is autoescaped, carries no script, no inline style and no data: URI, so Jenkins' default
Content-Security-Policy shows it as it is.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from harness import plots
from harness.compare import Comparison, MetricComparison
from harness.environment import FINGERPRINT_KEYS, METADATA
from harness.files import atomic_write_bytes, atomic_write_text
from harness.metrics import METRICS
from harness.results import Results, Round

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SUMMARY_MARKER = "<!-- perf-harness-report -->"
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


def _name_with_step(m: MetricComparison) -> str:
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


def _safe_url(url: Any) -> str | None:
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
    return [
        {"name": n, "baseline": b, "candidate": c, "differs": d,
         "baseline_url": _safe_url(b) if n == "jenkins_build_url" else None,
         "candidate_url": _safe_url(c) if n == "jenkins_build_url" else None}
        for n, b, c, d in rows
    ]


def _rounds_text(results: Results) -> str:
    valid = sum(1 for r in results.rounds if r.valid)
    return f"{len(results.rounds)} ({valid})"


def inconclusive_gated(comparison: Comparison) -> list[str]:
    """One line per gated metric that could not be decided, with the rounds that would settle it."""
    out = []
    for m in ordered(comparison.gated):
        if m.verdict != "inconclusive":
            continue
        needs = f"; about {m.rounds_needed} rounds per side would settle it" if m.rounds_needed else ""
        out.append(f"{_name_with_step(m)}: could only detect {format_detectable(m.detectable)}, "
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
    """Callgrind function changes: instruction counts per side and the relative change."""
    functions = details.get("functions")
    if not functions:
        return None
    return [
        {"function": str(f.get("function", "")),
         "baseline": format_value(f.get("baseline"), "instr"),
         "candidate": format_value(f.get("candidate"), "instr"),
         "change": format_change(f.get("change"))}
        for f in functions[:TOP_ROWS * 2]
    ]


# ---------------------------------------------------------------- plot data


def _ok_indices(r: Round) -> list[int]:
    log = r.requests
    return [i for i, (s, e) in enumerate(zip(log.status, log.error)) if e is None and 0 < s < 400]


def _request_side(results: Results) -> plots.Side:
    series = []
    for r in results.rounds:
        ok = _ok_indices(r)
        if ok:
            series.append(plots.Series(x=[r.requests.intended[i] for i in ok],
                                       y=[r.requests.latency[i] for i in ok], step=r.step))
    return plots.Side(results.label, tuple(series))


def _offered_rate(r: Round) -> float | None:
    if r.step is not None:
        return r.step
    intended = r.requests.intended
    span = max(intended, default=0.0) - min(intended, default=0.0)
    return (len(intended) - 1) / span if len(intended) > 1 and span > 0 else None


def _throughput_side(results: Results) -> plots.Side:
    series = []
    for r in results.rounds:
        offered, achieved = _offered_rate(r), r.summary.get("responses_per_s")
        if offered is not None and achieved is not None:
            series.append(plots.Series(x=[offered], y=[achieved], step=r.step))
    return plots.Side(results.label, tuple(series))


def _cpu_percent(r: Round) -> plots.Series | None:
    res = r.resources
    if res is None or len(res.t) < 2:
        return None
    user, system = res.columns.get("cpu_user"), res.columns.get("cpu_system")
    if not user or not system:
        return None
    cpu = [u + s for u, s in zip(user, system)]
    xs, ys = [], []
    for i in range(1, len(res.t)):
        dt = res.t[i] - res.t[i - 1]
        if dt > 0:
            xs.append(res.t[i])
            ys.append(100.0 * (cpu[i] - cpu[i - 1]) / dt)
    return plots.Series(xs, ys, r.step)


def _column_series(r: Round, column: str, scale: float, cumulative: bool) -> plots.Series | None:
    res = r.resources
    values = res.columns.get(column) if res is not None else None
    if res is None or not values or column in res.unavailable:
        return None
    start = values[0] if cumulative else 0.0
    return plots.Series(res.t, [(v - start) / scale for v in values], r.step)


def _resource_rows(baseline: Results, candidate: Results) -> list[tuple[str, plots.Side, plots.Side]]:
    def side(results: Results, pick) -> plots.Side:
        return plots.Side(results.label,
                          tuple(s for s in (pick(r) for r in results.rounds) if s is not None))

    mb = 1024.0 * 1024.0
    written = "write_bytes"
    if not any(_column_series(r, written, mb, True) for r in baseline.rounds + candidate.rounds):
        written = "write_chars"  # platforms without storage counters still count write calls
    picks = [
        ("CPU (% of one core)", _cpu_percent),
        ("RSS (MB)", lambda r: _column_series(r, "rss", mb, False)),
        ("bytes written (MB)" if written == "write_bytes" else "bytes passed to write (MB)",
         lambda r: _column_series(r, written, mb, True)),
    ]
    rows = [(label, side(baseline, pick), side(candidate, pick)) for label, pick in picks]
    return [row for row in rows if row[1].series or row[2].series]


def _lag_side(results: Results) -> plots.Side:
    series = []
    for r in results.rounds:
        samples = (r.probes.get("loop_lag") or {}).get("samples") or []
        if samples:
            series.append(plots.Series(x=samples, y=samples, step=r.step))
    return plots.Side(results.label, tuple(series))


def write_plots(comparison: Comparison, out_dir: Path) -> list[tuple[Path, str]]:
    """Every plot the data allows, each rendered once: (path, caption) pairs."""
    base, cand = comparison.baseline, comparison.candidate
    out: list[tuple[Path, str]] = []
    requests = (_request_side(base), _request_side(cand))
    if requests[0].series or requests[1].series:
        out.append((plots.response_times(*requests, out_dir / "response_times.png"),
                    "Response time of every request against its intended send time, all rounds"))
        out.append((plots.ecdf(*requests, out_dir / "latency_ecdf.png",
                               xlabel="response time (ms)"),
                    "Response time ECDF: the fraction of requests answered within a time"))
    rates = (_throughput_side(base), _throughput_side(cand))
    if rates[0].series or rates[1].series:
        out.append((plots.throughput(*rates, out_dir / "throughput.png"),
                    "Responses per second against the theoretical maximum (the offered rate)"))
    rows = _resource_rows(base, cand)
    if rows:
        out.append((plots.resources(rows, out_dir / "resources.png"),
                    "Resources of the subject's process tree over each round"))
    lag = (_lag_side(base), _lag_side(cand))
    if lag[0].series or lag[1].series:
        out.append((plots.ecdf(*lag, out_dir / "loop_lag_ecdf.png", xlabel="event-loop lag (ms)"),
                    "Event-loop lag ECDF: how late callbacks scheduled on the loop ran"))
    return out


# ---------------------------------------------------------------- renderers


def _jinja() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # everything from the environment (branch names, labels) is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def report_view(comparison: Comparison, plot_files: Sequence[tuple[Path, str]] = (),
                report_url: str | None = None) -> dict[str, Any]:
    """Everything report.html shows, as display strings."""
    return {
        "experiment": comparison.candidate.experiment.name,
        "headline": comparison.headline,
        "overall": comparison.overall,
        "overall_text": OVERALL_TEXT.get(comparison.overall, comparison.overall.upper()),
        "reasons": list(comparison.reasons),
        "warnings": list(comparison.warnings),
        "inconclusive": inconclusive_gated(comparison),
        "environment": environment_rows(comparison),
        "tables": step_tables(comparison),
        "plots": [{"file": p.name, "caption": c} for p, c in plot_files],
        "queries": queries_view(comparison.details),
        "functions": functions_view(comparison.details),
        "report_url": _safe_url(report_url),
    }


def render_html(comparison: Comparison, plot_files: Sequence[tuple[Path, str]] = (),
                report_url: str | None = None) -> str:
    """report.html as text (the PNG files named in `plot_files` must sit beside it)."""
    view = report_view(comparison, plot_files, report_url)
    return _jinja().get_template("report.html.j2").render(**view)


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell on GitHub: no HTML, no column breaks."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def render_summary(comparison: Comparison, report_url: str | None) -> str:
    """summary.md: PR-comment sized; the marker line lets the publisher find and update it."""
    lines = [
        SUMMARY_MARKER,
        f"### Performance: {_md(OVERALL_TEXT.get(comparison.overall, comparison.overall))}",
        "",
        f"Experiment **{_md(comparison.candidate.experiment.name)}**: baseline "
        f"**{_md(comparison.baseline.label)}** vs candidate **{_md(comparison.candidate.label)}**.",
        "",
        _md(comparison.headline),
        "",
    ]
    if comparison.overall in ("refused", "invalid"):
        lines += [f"- {_md(r)}" for r in comparison.reasons] + [""]
    gated = ordered(comparison.gated)
    if gated:
        lines += ["| gated metric | baseline | candidate | change | verdict |",
                  "|---|--:|--:|--:|---|"]
        for m in gated:
            row = metric_row(m)
            name = _name_with_step(m)
            verdict = f"**{m.verdict}**" if m.verdict in ("regression", "inconclusive") else m.verdict
            lines.append(f"| {_md(name)} | {row.baseline} | {row.candidate} | {row.change} "
                         f"| {verdict} |")
        lines.append("")
    else:
        lines += ["No gated metric was compared.", ""]
    notes = inconclusive_gated(comparison)
    if notes:
        lines.append(f"**Inconclusive gated metrics ({len(notes)}):**")
        lines += [f"- {_md(n)}" for n in notes]
        lines.append("")
    if comparison.warnings:
        lines.append(f"**Warnings ({len(comparison.warnings)}):**")
        lines += [f"- {_md(w)}" for w in comparison.warnings[:5]]
        lines.append("")
    url = _safe_url(report_url)
    lines.append(f"[Full report]({url})" if url else
                 "Full report: not published (report link placeholder).")
    return "\n".join(lines) + "\n"


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml(text: str) -> str:
    return _XML_INVALID.sub("?", text)


def _detail(m: MetricComparison) -> str:
    row = metric_row(m)
    return _xml(
        f"{row.label}: baseline {row.baseline}, candidate {row.candidate}, change {row.change}, "
        f"interval {row.interval}, p {row.p_value}, detectable {row.detectable}, "
        f"verdict {m.verdict}. {row.evidence}. {m.reason}"
    )


def render_junit(comparison: Comparison) -> str:
    """junit.xml: a test case per gated metric; regression = failure, inconclusive = skipped.

    Inconclusive is `skipped` (with the reason) so Jenkins shows it without failing the build,
    matching the default "pass with a warning". A refused or invalid comparison, or one with no
    gated metric, adds a "comparison" case with an error, so the junit step never sees an empty
    report and never shows a broken comparison as passed.
    """
    classname = _xml(f"performance.{comparison.candidate.experiment.name}")
    suite = ET.Element("testsuite", name=classname, time="0")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for m in ordered(comparison.gated):
        case = ET.SubElement(suite, "testcase", classname=classname, name=_xml(m.key), time="0")
        counts["tests"] += 1
        if m.verdict == "regression":
            ET.SubElement(case, "failure", type="regression", message=_xml(m.reason)).text = (
                _detail(m))
            counts["failures"] += 1
        elif m.verdict == "inconclusive":
            ET.SubElement(case, "skipped", message=_xml(f"inconclusive: {m.reason}"))
            counts["skipped"] += 1
        ET.SubElement(case, "system-out").text = _detail(m)
    if comparison.overall in ("refused", "invalid") or not counts["tests"]:
        case = ET.SubElement(suite, "testcase", classname=classname, name="comparison", time="0")
        counts["tests"] += 1
        if comparison.overall in ("refused", "invalid"):
            ET.SubElement(case, "error", type=comparison.overall,
                          message=_xml(comparison.headline)).text = _xml(
                "\n".join(comparison.reasons))
            counts["errors"] += 1
        ET.SubElement(case, "system-out").text = _xml(comparison.headline)
    for name, value in counts.items():
        suite.set(name, str(value))
    root = ET.Element("testsuites", name="performance", **{k: str(v) for k, v in counts.items()})
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def terminal_table(comparison: Comparison) -> str:
    """Aligned plain text for a console: every metric (gated ones starred) and the overall verdict."""
    header = ("", "metric", "baseline", "candidate", "change", "interval", "p", "verdict")
    lines = [header]
    for m in ordered(comparison.metrics):
        row = metric_row(m)
        name = _name_with_step(m)
        lines.append(("*" if m.gate else "", name, row.baseline, row.candidate, row.change,
                      row.interval, row.p_value, m.verdict))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {2, 3, 4}
    text = [
        " ".join(cell.rjust(w) if i in right else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(line, widths))).rstrip()
        for line in lines
    ]
    overall = OVERALL_TEXT.get(comparison.overall, comparison.overall.upper())
    out = [f"{comparison.candidate.experiment.name}: baseline {comparison.baseline.label!r} "
           f"vs candidate {comparison.candidate.label!r}", ""] + text + [
        "", "* gates the build"]
    out += [f"inconclusive (gated): {n}" for n in inconclusive_gated(comparison)]
    out += [f"warning: {w}" for w in comparison.warnings]
    out += ["", f"Overall: {overall}", comparison.headline]
    return "\n".join(out) + "\n"


def write_reports(comparison: Comparison, *, out_dir: Path, report_url: str | None = None
                  ) -> list[Path]:
    """Write report.html, report.css, the PNG plots, summary.md and junit.xml; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_files = write_plots(comparison, out_dir)
    css = out_dir / "report.css"
    atomic_write_bytes(css, (TEMPLATES / "report.css").read_bytes())
    html = out_dir / "report.html"
    atomic_write_text(html, render_html(comparison, plot_files, report_url))
    summary = out_dir / "summary.md"
    atomic_write_text(summary, render_summary(comparison, report_url))
    junit = out_dir / "junit.xml"
    atomic_write_text(junit, render_junit(comparison))
    return [html, css, *(p for p, _ in plot_files), summary, junit]
