"""Renderers of a Comparison: report.html (+ CSS and PNG plots), summary.md, junit.xml, terminal.

Every renderer only reads the harness.compare objects, through the view model in harness.view, so
the templates do no arithmetic. The HTML is autoescaped and carries no script, no inline style and
no data: URI, so Jenkins' default Content-Security-Policy shows it as it is.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from harness import plots
from harness.compare import Comparison, MetricComparison, save_verdict
from harness.files import atomic_write_bytes, atomic_write_text
from harness.results import Results, Round
from harness.view import (
    OVERALL_TEXT,
    endpoint_tables,
    environment_rows,
    findings,
    functions_view,
    inconclusive_gated,
    metric_row,
    name_with_step,
    ordered,
    python_functions_view,
    queries_view,
    safe_url,
    shown_warnings,
    side_names,
    step_tables,
)


def _templates() -> Path:
    """templates/ of the source tree, or the copy a wheel installs as harness/templates."""
    source = Path(__file__).resolve().parent.parent / "templates"
    return source if source.is_dir() else Path(__file__).resolve().parent / "templates"


TEMPLATES = _templates()
SUMMARY_MARKER = "<!-- perf-harness-report -->"


# ---------------------------------------------------------------- plot data


def _ok_indices(r: Round) -> list[int]:
    log = r.requests
    pairs = enumerate(zip(log.status, log.error, strict=True))
    return [i for i, (status, error) in pairs if error is None and 0 < status < 400]


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
    cpu = [u + s for u, s in zip(user, system, strict=False)]  # equal by construction
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


def _resource_rows(
    baseline: Results, candidate: Results
) -> list[tuple[str, plots.Side, plots.Side]]:
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
    names = side_names(comparison)
    base = dataclasses.replace(comparison.baseline, label=names[0])
    cand = dataclasses.replace(comparison.candidate, label=names[1])
    out: list[tuple[Path, str]] = []
    requests = (_request_side(base), _request_side(cand))
    if requests[0].series or requests[1].series:
        out.append((plots.response_times(*requests, out_dir / "response_times.png"),
                    "Response time of every request against its intended send time, all rounds"))
        out.append((plots.ecdf(*requests, out_dir / "latency_ecdf.png",
                               xlabel="response time (ms)", what="response time ECDF"),
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
        out.append((plots.ecdf(*lag, out_dir / "loop_lag_ecdf.png", xlabel="event-loop lag (ms)",
                               what="event-loop lag ECDF"),
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
        "baseline_label": side_names(comparison)[0],
        "candidate_label": side_names(comparison)[1],
        "headline": comparison.headline,
        "findings": findings(comparison),
        "endpoint_tables": endpoint_tables(comparison),
        "overall": comparison.overall,
        "overall_text": OVERALL_TEXT.get(comparison.overall, comparison.overall.upper()),
        "reasons": list(comparison.reasons),
        "warnings": shown_warnings(comparison),
        "inconclusive": inconclusive_gated(comparison),
        "environment": environment_rows(comparison),
        "tables": step_tables(comparison),
        "plots": [{"file": p.name, "caption": c} for p, c in plot_files],
        "queries": queries_view(comparison.details),
        "functions": functions_view(comparison.details),
        "python_functions": python_functions_view(comparison.details),
        "report_url": safe_url(report_url),
    }


def render_html(comparison: Comparison, plot_files: Sequence[tuple[Path, str]] = (),
                report_url: str | None = None) -> str:
    """report.html as text (the PNG files named in `plot_files` must sit beside it)."""
    view = report_view(comparison, plot_files, report_url)
    return _jinja().get_template("report.html.j2").render(**view)


def _md(text: str) -> str:
    """Text safe in Markdown on GitHub: no HTML, no emphasis or links, no table-column breaks."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"([\\`*_\[\]|])", r"\\\1", text)  # SELECT * and file_names stay literal
    return text.replace("\r", " ").replace("\n", " ")


def _finding_lines(comparison: Comparison) -> list[str]:
    """The report's first lines in Markdown: each change that matters, its likely causes nested."""
    lines = []
    for finding in findings(comparison):
        gate = ", gates the build" if finding.gate and finding.verdict == "regression" else ""
        lines.append(f"- **{_md(finding.verdict)}**{gate}: {_md(finding.text)}")
        lines += [f"  - likely cause: {_md(cause)}" for cause in finding.causes]
    return lines


def render_summary(comparison: Comparison, report_url: str | None) -> str:
    """summary.md: PR-comment sized; the marker line lets the publisher find and update it."""
    names = side_names(comparison)
    lines = [
        SUMMARY_MARKER,
        f"### Performance: {_md(OVERALL_TEXT.get(comparison.overall, comparison.overall))}",
        "",
        _md(comparison.headline),
        "",
    ]
    top = _finding_lines(comparison)
    lines += top + [""] if top else []
    lines += [
        f"Experiment **{_md(comparison.candidate.experiment.name)}**: baseline "
        f"**{_md(names[0])}** vs candidate **{_md(names[1])}**.",
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
            name = name_with_step(m)
            loud = m.verdict in ("regression", "inconclusive")
            verdict = f"**{m.verdict}**" if loud else m.verdict
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
    url = safe_url(report_url)
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
    root = ET.Element("testsuites", name="performance")
    for name, value in counts.items():
        suite.set(name, str(value))
        root.set(name, str(value))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def terminal_table(comparison: Comparison) -> str:
    """Aligned plain text for a console: every metric (gated starred) and the overall verdict."""
    header = ("", "metric", "baseline", "candidate", "change", "interval", "p", "verdict")
    lines = [header]
    for m in ordered(comparison.metrics):
        row = metric_row(m)
        name = name_with_step(m)
        lines.append(("*" if m.gate else "", name, row.baseline, row.candidate, row.change,
                      row.interval, row.p_value, m.verdict))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {2, 3, 4}
    text = [
        " ".join(cell.rjust(w) if i in right else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(line, widths, strict=True))).rstrip()
        for line in lines
    ]
    overall = OVERALL_TEXT.get(comparison.overall, comparison.overall.upper())
    if len(lines) == 1:
        text = ["no metric was compared"]
    out = [f"{comparison.candidate.experiment.name}: baseline {comparison.baseline.label!r} "
           f"vs candidate {comparison.candidate.label!r}", ""] + text + [
        "", "* gates the build"]
    out += [f"inconclusive (gated): {n}" for n in inconclusive_gated(comparison)]
    out += [w if w.upper().startswith("WARNING") else f"warning: {w}" for w in comparison.warnings]
    top = findings(comparison)
    out += ["", "What matters:"] if top else []
    for finding in top:
        out.append(f"  {finding.verdict}: {finding.text}")
        out += [f"    likely cause: {cause}" for cause in finding.causes]
    out += ["", f"Overall: {overall}", comparison.headline]
    return "\n".join(out) + "\n"


def write_reports(comparison: Comparison, *, out_dir: Path, report_url: str | None = None
                  ) -> list[Path]:
    """Write verdict.json, report.html, report.css, the PNG plots, summary.md and junit.xml.

    Returns the paths written. verdict.json comes first, so a failure while plotting still leaves
    the machine-readable verdict.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    verdict = out_dir / "verdict.json"
    save_verdict(comparison, verdict)
    plot_files = write_plots(comparison, out_dir)
    css = out_dir / "report.css"
    atomic_write_bytes(css, (TEMPLATES / "report.css").read_bytes())
    html = out_dir / "report.html"
    atomic_write_text(html, render_html(comparison, plot_files, report_url))
    summary = out_dir / "summary.md"
    atomic_write_text(summary, render_summary(comparison, report_url))
    junit = out_dir / "junit.xml"
    atomic_write_text(junit, render_junit(comparison))
    return [verdict, html, css, *(p for p, _ in plot_files), summary, junit]
