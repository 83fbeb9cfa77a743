"""The report's view model: metric comparisons as display strings (units, signs, intervals).

Renderers (harness.report) and templates only place these strings; no arithmetic happens after
this step. Rows are ordered by how reliable their evidence is: counters, instructions, timing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
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
    note: str = ""
    p_adjusted: str = NO_VALUE  # the letter of the row's evidence note when its group has several


@dataclass(frozen=True)
class StepTable:
    """The change table of one rate step (or of the whole run), grouped by kind of evidence.

    `notes` holds, per group title, the evidence text of its rows once: one entry when every row
    rests on the same evidence, else one per distinct text, prefixed by the letter the rows carry
    (a reason shared by several rows is lettered the same way). `groups` holds the rows that
    gate or changed; `minor` the others, which the report folds away.
    """

    title: str
    groups: tuple[tuple[str, tuple[MetricRow, ...]], ...]
    notes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # rows neither gated nor changed, shown folded away (same group structure as `groups`)
    minor: tuple[tuple[str, tuple[MetricRow, ...]], ...] = ()
    minor_notes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def minor_count(self) -> int:
        return sum(len(rows) for _, rows in self.minor)


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


def endpoint_of(m: MetricComparison) -> str | None:
    """The endpoint a comparison belongs to (the "[name]" of its key), None for the whole mix."""
    found = re.search(r"\[([^\]]*)\]", m.key)
    return found.group(1) if found else None


def _display_label(m: MetricComparison) -> str:
    # The registry's short labels ("average", "p99") read as the thesis' "Avg. response time".
    label = f"response time {m.label}" if m.metric.startswith("latency_") else m.label
    endpoint = endpoint_of(m)
    return f"{label} [{endpoint}]" if endpoint and f"[{endpoint}]" not in label else label


def _bare_label(m: MetricComparison) -> str:
    """The label without its endpoint, for tables that are already grouped by endpoint."""
    endpoint = endpoint_of(m)
    label = _display_label(m)
    return label.replace(f" [{endpoint}]", "") if endpoint else label


def name_with_step(m: MetricComparison) -> str:
    label = _display_label(m)
    return label if m.step is None else f"{label} @ {_step_title(m.step)}"


def _evidence(m: MetricComparison) -> str:
    return m.evidence


MIN_TEST_ROUNDS = 5  # below this per side no rank test can decide (harness.compare)
NOT_SIGNIFICANT = 0.05  # adjusted p-values from here on read "n.s." (the number is in the title)


def tested(m: MetricComparison) -> bool:
    """Whether a statistical test decided this row: timing with enough rounds on both sides.

    Counters are judged by a threshold, and a rank test on fewer rounds cannot reach
    significance, so their p-values and intervals say nothing and are not shown.
    """
    return (m.kind == "timing" and m.p_value is not None
            and min(len(m.baseline_rounds), len(m.candidate_rounds)) >= MIN_TEST_ROUNDS)


def metric_row(m: MetricComparison) -> MetricRow:
    """Display strings for one metric comparison (p and interval only where a test ran; an
    adjusted p of 0.05 or more reads "n.s.", as a column of "1.000" says nothing)."""
    adjusted = m.p_adjusted if m.p_adjusted is not None else m.p_value
    test = tested(m)
    return MetricRow(
        key=m.key, label=_display_label(m), gate=m.gate,
        baseline=format_value(m.baseline, m.unit), candidate=format_value(m.candidate, m.unit),
        change=format_change(m.change),
        interval=format_interval(m.ci_low, m.ci_high) if test else NO_VALUE,
        p_value=(format_p(adjusted) if adjusted is not None and adjusted < NOT_SIGNIFICANT
                 else "n.s.") if test else NO_VALUE,
        p_raw=format_p(m.p_value) if test else NO_VALUE,
        p_adjusted=format_p(adjusted) if test else NO_VALUE,
        detectable=format_detectable(m.detectable), verdict=m.verdict,
        evidence=_evidence(m), reason=_reason(m),
    )


def _reason(m: MetricComparison) -> str:
    if m.verdict == "inconclusive" and m.rounds_needed and "would settle" not in m.reason:
        return f"{m.reason}; about {m.rounds_needed} rounds per side would settle it"
    return m.reason


LONG_REASON = 60  # characters: a shorter reason shared by several rows stays in the rows
SETTLE = re.compile(r"; about \d+ rounds per side would settle it$")


def _evidence_text(row: MetricRow) -> str:
    """A row's evidence without a threshold its reason already states ("within the 1% ...")."""
    parts = [p for p in row.evidence.split(", ")
             if not (p.startswith("relative threshold ") and p.split()[-1] in row.reason)]
    return ", ".join(parts)


def _noted(rows: list[MetricRow]) -> tuple[tuple[MetricRow, ...], tuple[str, ...]]:
    """Rows and their group's notes: each evidence text once, and each reason shared by several
    rows once; rows then carry the letter of their note instead of the text."""
    evidence = [_evidence_text(row) for row in rows]
    texts = list(dict.fromkeys(evidence))
    notes: list[str] = []
    letters: dict[str, str] = {}

    def letter(text: str, kind: str) -> str:
        if text not in letters:
            letters[text] = chr(ord("a") + len(letters))
            notes.append(f"({letters[text]}) {kind}{text}")
        return letters[text]

    if len(texts) == 1:
        notes.append(f"evidence: {texts[0]}")
    mains = [SETTLE.sub("", row.reason) for row in rows]
    shared = {text for text in mains if mains.count(text) > 1 and len(text) > LONG_REASON}
    out = []
    for row, text, main in zip(rows, evidence, mains, strict=True):
        marks = [letter(text, "evidence: ")] if len(texts) > 1 else []
        reason = row.reason
        if main in shared:
            marks.append(letter(main, ""))
            reason = f"see ({letters[main]})" + row.reason[len(main):]
        out.append(replace(row, note=",".join(marks), reason=reason))
    return tuple(out), tuple(notes)


def _minor(row: MetricRow) -> bool:
    """Rows folded away: not gated, and neither a regression nor an improvement."""
    return not row.gate and row.verdict in ("unchanged", "inconclusive")


Groups = tuple[tuple[str, tuple[MetricRow, ...]], ...]


def _table(title: str, groups: list[tuple[str, list[MetricRow]]]) -> StepTable:
    """A StepTable with the gated or changed rows shown and the others folded, each part with
    its own notes (a folded row's evidence is not listed above the shown rows)."""
    major: list[tuple[str, tuple[MetricRow, ...]]] = []
    minor: list[tuple[str, tuple[MetricRow, ...]]] = []
    notes: dict[str, tuple[str, ...]] = {}
    minor_notes: dict[str, tuple[str, ...]] = {}
    for name, rows in groups:
        for part, target, texts in ((False, major, notes), (True, minor, minor_notes)):
            chosen, lines = _noted([r for r in rows if _minor(r) == part])
            if chosen:
                target.append((name, chosen))
                texts[name] = lines
    return StepTable(title, tuple(major), notes, tuple(minor), minor_notes)


def ordered(metrics: Iterable[MetricComparison]) -> list[MetricComparison]:
    """Counters first (most reliable), then instructions, then timing in Figure 6.5 order."""
    return sorted(metrics, key=_order)


def _per_endpoint(m: MetricComparison) -> bool:
    """Rows shown in the per-endpoint table (instruction counts stay with their tier)."""
    return endpoint_of(m) is not None and _group(m) != "instructions"


def _steps(metrics: Iterable[MetricComparison]) -> list[float | None]:
    return sorted({m.step for m in metrics}, key=lambda s: (s is not None, s or 0.0))


def step_tables(comparison: Comparison) -> list[StepTable]:
    """One table per rate step (whole-run metrics first), rows grouped by kind of evidence.

    Per-endpoint rows are left out here; endpoint_tables() shows them.
    """
    mix = [m for m in comparison.metrics if not _per_endpoint(m)]
    steps = _steps(comparison.metrics)
    tables = []
    for step in steps:
        metrics = ordered(m for m in mix if m.step == step)
        groups = [(title, [metric_row(m) for m in metrics if _group(m) == name])
                  for name, title in GROUPS]
        title = _step_title(step) or ("whole run" if len(steps) > 1 else "")
        tables.append(_table(title, [g for g in groups if g[1]]))
    return [t for t in tables if t.groups or t.minor]


def endpoint_tables(comparison: Comparison) -> list[StepTable]:
    """Per-endpoint rows, one table per rate step, one group per endpoint (labels without it)."""
    per = [m for m in comparison.metrics if _per_endpoint(m)]
    tables = []
    for step in _steps(per):
        metrics = ordered(m for m in per if m.step == step)
        groups = [(endpoint, [replace(metric_row(m), label=_bare_label(m))
                              for m in metrics if endpoint_of(m) == endpoint])
                  for endpoint in sorted({endpoint_of(m) or "" for m in metrics})]
        tables.append(_table(_step_title(step), groups))
    return tables


def side_names(comparison: Comparison) -> tuple[str, str]:
    """What tells the two sides apart, for titles: the label, plus the [variables] that differ
    ("baseline db=blocking") and, when the labels do not already differ, the commits."""
    base, cand = comparison.baseline, comparison.candidate
    bv, cv = base.experiment.variables, cand.experiment.variables
    differ = sorted(k for k in set(bv) | set(cv) if bv.get(k) != cv.get(k))
    names = []
    for results, values in ((base, bv), (cand, cv)):
        extra = [f"{k}={values[k]}" for k in differ if k in values]
        commit = results.environment.get("subject_commit")
        commits = {base.environment.get("subject_commit"), cand.environment.get("subject_commit")}
        if not extra and base.label in ("baseline", "candidate") and len(commits) > 1 and commit:
            extra.append(f"at {str(commit)[:10]}")
        names.append(" ".join([results.label, *extra]))
    return names[0], names[1]


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


def shown_warnings(comparison: Comparison) -> list[str]:
    """The comparison's warnings, without the one that repeats the inconclusive-metrics list
    (the report shows that list in its own box)."""
    listed = bool(inconclusive_gated(comparison))
    return [w for w in comparison.warnings
            if not (listed and w.startswith("WARNING:") and "inconclusive" in w)]


def inconclusive_gated(comparison: Comparison) -> list[str]:
    """One line per gated metric that could not be decided, with the rounds that would settle it."""
    out = []
    for m in ordered(comparison.gated):
        if m.verdict != "inconclusive":
            continue
        needs = (f"; about {m.rounds_needed} rounds per side would settle it"
                 if m.rounds_needed else "")
        if m.detectable is not None and math.isfinite(m.detectable):
            detected = f"could only detect {format_detectable(m.detectable)}"
        elif m.kind == "timing":
            detected = "not judged: too few rounds for its test"
        else:  # a counter or instruction count: judged, its interval straddles the minimum
            detected = "its interval reaches past the minimum without clearing it"
        out.append(f"{name_with_step(m)}: {detected}, "
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
    statement = str(row.get("statement", ""))
    return {
        "statement": statement, "short": shorten(statement),
        "operation": str(row.get("operation", "")),
        "calls": _count(calls), "total": _seconds(total), "max": _seconds(row.get("max")),
        "average": _seconds(average), "min": _seconds(row.get("min")),
        "rows": _count(row.get("rows")), "callers": callers,
    }


def _change_row(row: dict[str, Any], name_key: str) -> dict[str, Any]:
    name = str(row.get(name_key, ""))
    return {
        "name": name, "short": shorten(name), "operation": str(row.get("operation", "")),
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


_TABLES = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+[\"`\[]?([A-Za-z_][\w.]*)",
                     re.IGNORECASE)


def _tables(statement: str) -> frozenset[str]:
    return frozenset(name.lower() for name in _TABLES.findall(statement))


def _caller_key(where: Any) -> tuple[str, str] | None:
    """("file", "function") of "file:line function [via ...]": the line may move in an edit."""
    if not where:
        return None
    head = str(where).split(" via ", 1)[0]
    place, _, function = head.partition(" ")
    return place.rsplit(":", 1)[0], function


def _only_in(row: dict[str, Any], side: str) -> bool:
    other = "candidate" if side == "baseline" else "baseline"
    return bool(row.get(f"{side}_calls")) and not row.get(f"{other}_calls")


def paired_changes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Statement changes with replacements paired: a statement only the baseline ran and one only
    the candidate ran, from the same caller (file and function) on the same tables, become one
    "changed" row (statement "old → new", "replaced" holding the old text), ranked again by the
    change in total time. Unpaired rows stay as they are."""
    removed = [r for r in rows if _only_in(r, "baseline")]
    used: set[int] = set()
    out = []
    for row in rows:
        if id(row) in used or not _only_in(row, "candidate"):
            continue
        key, tables = _caller_key(row.get("top_caller")), _tables(str(row.get("statement", "")))
        match = next((old for old in removed if id(old) not in used and key is not None
                      and _caller_key(old.get("top_caller")) == key
                      and _tables(str(old.get("statement", ""))) == tables and tables), None)
        if match is None:
            continue
        used.update((id(row), id(match)))
        base_total, cand_total = match.get("baseline_total") or 0.0, row.get("candidate_total")
        out.append({
            **row, "statement": f"{match.get('statement', '')} → {row.get('statement', '')}",
            "replaced": match.get("statement"), "operation": "changed",
            "baseline_total": base_total, "baseline_calls": match.get("baseline_calls"),
            "total_change": (cand_total or 0.0) - base_total,
            "calls_change": (row.get("candidate_calls") or 0) - (match.get("baseline_calls") or 0),
            "baseline_rows": match.get("baseline_rows"),
            "rows_change": (row.get("candidate_rows") or 0) - (match.get("baseline_rows") or 0),
        })
    out += [r for r in rows if id(r) not in used]
    return sorted(out, key=lambda r: (-abs(float(r.get("total_change") or 0.0)),
                                      -abs(float(r.get("calls_change") or 0.0))))


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
        "changes": [_change_row(r, "statement")
                    for r in paired_changes(list(queries.get("changes") or []))[:10]],
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


# ---------------------------------------------------------------- the answer first


@dataclass(frozen=True)
class Finding:
    """One change that matters, as the report's first lines state it, with its likely causes."""

    text: str  # "search: response time average 21.3 ms → 42.1 ms (+97.9%, slower)"
    verdict: str
    gate: bool
    causes: tuple[str, ...]


MAX_FINDINGS = 3
SHORT_SQL = 90  # characters of a statement shown before "…"


def shorten(text: str, limit: int = SHORT_SQL) -> str:
    """Whitespace collapsed and cut at `limit` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "…"


# bytes written, per file kind (file probe): the most specific of the "written" family
FILE_KIND_WRITES = ("db_write_bytes_per_request", "log_write_bytes_per_request",
                    "state_write_bytes_per_request", "other_write_bytes_per_request")
WRITTEN = frozenset({"write_chars_per_request", "write_bytes_per_request",
                     "write_chars_per_hour", "write_bytes_per_hour", *FILE_KIND_WRITES})


def _family(m: MetricComparison) -> str:
    """Metrics that tell the same story share a family: one finding per family and endpoint."""
    if m.metric.startswith("latency_") or m.metric == "service_mean":
        return "latency"
    if m.metric in WRITTEN:
        return "written"
    return m.metric


def _direction(m: MetricComparison) -> str:
    if m.verdict not in ("regression", "improvement"):
        return m.verdict
    worse = m.verdict == "regression"
    if _family(m) == "latency" or m.metric.startswith("cpu_"):
        return "slower" if worse else "faster"
    return "worse" if worse else "better"


def _rank(m: MetricComparison) -> tuple[int, float]:
    order = {("regression", True): 0, ("improvement", True): 1, ("regression", False): 2,
             ("improvement", False): 3}
    size = abs(m.change) if m.change is not None and math.isfinite(m.change) else math.inf
    return order.get((m.verdict, m.gate), 9), -size


def _written_choice(m: MetricComparison, candidates: list[MetricComparison]) -> MetricComparison:
    """Of the bytes-written metrics that moved alike, the one that says most: a file kind's
    (log, database, ...) before the process's totals, per request before per hour."""
    if _family(m) != "written":
        return m
    alike = [x for x in candidates if _family(x) == "written" and x.step == m.step
             and endpoint_of(x) == endpoint_of(m) and _rank(x)[0] == _rank(m)[0]]

    def preference(x: MetricComparison) -> tuple[int, float]:
        kind = 0 if x.metric in FILE_KIND_WRITES else 1 if x.metric.endswith("_request") else 2
        return kind, _rank(x)[1]

    return min(alike, key=preference)


def _split_mix(comparison: Comparison) -> set[tuple[str, float | None]]:
    """(metric, step) pairs that were judged per endpoint: their mix rows are not findings."""
    return {(m.metric, m.step) for m in comparison.metrics if endpoint_of(m) is not None
            and m.gate}


def _query_cause(details: dict[str, Any], worse: bool, by: str = "total") -> str | None:
    """The statement whose total time (`by="rows"`: rows fetched) moved most in the finding's
    direction, and its caller."""
    rows = paired_changes(list((details.get("queries") or {}).get("changes") or []))
    if by == "rows":
        rows = sorted(rows, key=lambda r: -abs(float(r.get("rows_change") or 0.0)))
    for row in rows:
        change = row.get("total_change") or 0.0
        calls = row.get("calls_change") or 0.0
        fetched = row.get("rows_change") or 0.0
        moved = fetched if by == "rows" else change if change else calls
        if (moved > 0) == worse and moved:
            caller = row.get("top_caller")
            parts = [f"rows fetched {_signed_count(fetched)}" if by == "rows" else "",
                     f"total time {_signed_seconds(change)}" if change else "",
                     f"calls {_signed_count(calls)}" if calls else "",
                     f"called from {caller}" if caller else ""]
            what = (f"query {shorten(row['replaced'], 50)} replaced by "
                    f"{shorten(row.get('statement', '').split(' → ', 1)[-1], 50)}"
                    if row.get("replaced") else f"query {shorten(row.get('statement', ''), 70)}")
            return f"{what}: " + ", ".join(p for p in parts if p)
    return None


# blocking on the event loop (probes.loops): which kinds of blocking call a loop counter counts
LOOP_KINDS: dict[str, tuple[str, ...] | None] = {
    "loop_queries_per_request": ("sqlite",),
    "loop_file_bytes_per_request": ("file_read", "file_write"),
    "loop_blocking_calls_per_request": None,  # every kind
    "loop_blocking_max": None,
}
LOOP_KIND_NAMES = {"sqlite": "statement", "file_read": "file read", "file_write": "file write"}


def _loop_cause(details: dict[str, Any], metric: str, worse: bool) -> str | None:
    """The blocking call site on the event loop whose calls per request moved most in the
    finding's direction: 'statement on the event loop at store.py:113 channel_rows_json: 1 → 0
    per request'."""
    if metric not in LOOP_KINDS:
        return None
    kinds = LOOP_KINDS[metric]
    blocking = details.get("blocking") or {}
    per_side: dict[str, dict[tuple[str, str, str], float]] = {}
    for side in ("baseline", "candidate"):
        sites = (blocking.get(side) or {}).get("sites") or []
        per_side[side] = {(str(s.get("kind", "")), str(s.get("where", "")), str(s.get("via", ""))):
                          float(s.get("calls_per_request") or 0.0) for s in sites
                          if kinds is None or s.get("kind") in kinds}
    keys = set(per_side["baseline"]) | set(per_side["candidate"])
    moves = [(per_side["candidate"].get(k, 0.0) - per_side["baseline"].get(k, 0.0), k)
             for k in keys]
    moves = [(change, k) for change, k in moves if change and (change > 0) == worse]
    if not moves:
        return None
    _, (kind, where, via) = max(moves, key=lambda item: (abs(item[0]), item[1]))
    before, after = per_side["baseline"].get((kind, where, via), 0.0), per_side["candidate"].get(
        (kind, where, via), 0.0)
    name = LOOP_KIND_NAMES.get(kind, kind.replace("_", " "))
    return (f"{name} on the event loop at {where}" + (f" via {via}" if via else "")
            + f": {before:.3g} → {after:.3g} per request")


def _function_cause(details: dict[str, Any], key: str, endpoint: str | None, worse: bool,
                    what: str) -> str | None:
    """The function whose cost per request moved most in the finding's direction."""
    for row in details.get(key) or []:
        change = row.get("change")
        if not isinstance(change, (int, float)) or not change or (change > 0) != worse:
            continue
        if endpoint is not None and row.get("endpoint") not in (None, "", endpoint):
            continue
        unit = {"lines": "line events"}.get(row.get("unit", "instr"), row.get("unit", "instr"))
        amount = (f"{change:+.3g} {unit}" if unit != "instr"
                  else ("+" if change > 0 else "-") + format_value(abs(change), "instr"))
        return f"{what} {row.get('function', '?')}: {amount} per request"
    return None


NO_QUERY_CAUSE = frozenset({"errors", "response_bytes_per_request"})
# bytes written: their likely cause is the file they went to (file probe), not a query's time
WRITE_METRICS = WRITTEN | {"loop_file_bytes_per_request"}


def _files_cause(details: dict[str, Any], worse: bool) -> str | None:
    """Where the bytes written went ("+65 B written per request, all in the log file
    access.log"), when they moved in the finding's direction."""
    files = details.get("files") or {}
    headline = files.get("headline")
    total = sum(c.get("write_change") or 0.0 for c in files.get("changes") or [])
    if not headline or not total or (total > 0) != worse:
        return None
    return str(headline)


def findings(comparison: Comparison) -> list[Finding]:
    """The two or three changes that matter, each with its most likely causes.

    Gated regressions first, then gated improvements, then reported-only regressions, each by
    size; one per metric family and endpoint (errors: one in all), and never a mix row whose
    endpoints were judged.
    A query, Python-function or C-function change is named as the cause of the first finding
    that moved the same way (a slower statement explains a slower endpoint, not a faster one);
    for bytes written, the file they went to (the file probe's headline).
    """
    split = _split_mix(comparison)
    chosen: list[MetricComparison] = []
    seen: set[tuple[str, str | None]] = set()
    candidates = [m for m in comparison.metrics if m.verdict in ("regression", "improvement")]
    for m in sorted(candidates, key=_rank):
        endpoint = endpoint_of(m)
        if endpoint is None and (m.metric, m.step) in split:
            continue
        if endpoint is not None and not m.gate and (m.metric, m.step) not in split \
                and m.verdict == "improvement":
            continue
        # failed requests are one finding, whichever endpoints they failed on
        family = (_family(m), None if m.metric == "errors" else endpoint)
        if family in seen:
            continue
        seen.add(family)
        chosen.append(_written_choice(m, candidates))
        if len(chosen) == MAX_FINDINGS:
            break
    details = comparison.details
    used: set[str] = set()
    out = []
    for m in chosen:
        endpoint, worse = endpoint_of(m), m.verdict == "regression"
        causes = []
        if m.metric in WRITE_METRICS:
            cause = _files_cause(details, worse)
            if cause and cause not in used:
                causes.append(cause)
                used.add(cause)
        elif m.metric not in NO_QUERY_CAUSE:
            for cause in (
                _loop_cause(details, m.metric, worse),
                _query_cause(details, worse,
                             by="rows" if m.metric == "query_rows_per_request" else "total"),
                _function_cause(details, "python_functions", endpoint, worse, "Python function"),
                _function_cause(details, "functions", endpoint, worse, "C function"),
            ):
                if cause and cause not in used:
                    causes.append(cause)
                    used.add(cause)
        step = f" @ {_step_title(m.step)}" if m.step is not None else ""
        label = _bare_label(m) + step
        where = f"{endpoint}: {label}" if endpoint else f"{label}:"
        text = (f"{where} {format_value(m.baseline, m.unit)} → "
                f"{format_value(m.candidate, m.unit)} ({format_change(m.change)}, "
                f"{_direction(m)})")
        out.append(Finding(text=text, verdict=m.verdict, gate=m.gate, causes=tuple(causes)))
    return out


def python_functions_view(details: dict[str, Any]) -> list[dict[str, str]] | None:
    """Python functions whose line events (or calls) per request changed most
    (harness.pyfunctions), the project's own functions first."""
    rows = details.get("python_functions")
    if not rows:
        return None
    out = []
    for row in rows[:TOP_ROWS]:
        before, change = row.get("baseline"), row.get("change")
        unit = "line events" if row.get("unit") == "lines" else "calls"
        out.append({
            "endpoint": str(row.get("endpoint", "")),
            "function": str(row.get("function", "")),
            "unit": unit,
            "baseline": _count(before), "candidate": _count(row.get("candidate")),
            "change": _signed_count(change),
            "relative": _relative(before, row.get("candidate")),
            "calls": f"{_count(row.get('calls_baseline'))} → {_count(row.get('calls_candidate'))}",
        })
    return out
