"""Renderers: golden summary.md / junit.xml / terminal table / report.html, safety, grouping."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from html.parser import HTMLParser

import pytest

from harness import report, view
from harness.results import RequestLog
from tests import comparisons
from tests.goldtest import assert_golden

URL = "https://jenkins.example/job/perf/7/Performance_20report/"


@pytest.fixture(scope="module")
def regression():
    return comparisons.comparison()


@pytest.fixture(scope="module")
def written(regression, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return out, report.write_reports(regression, out_dir=out, report_url=URL)


class _Tags(HTMLParser):
    """Every start tag with its attributes, so tests can look at what a browser would load."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


# ---------------------------------------------------------------- golden files


def test_summary_matches_golden(regression):
    assert_golden("summary.md", report.render_summary(regression, URL))


def test_junit_matches_golden(regression):
    assert_golden("junit.xml", report.render_junit(regression))


def test_terminal_table_matches_golden(regression):
    assert_golden("terminal.txt", report.terminal_table(regression))


def test_html_matches_golden(written):
    out, _ = written
    assert_golden("report.html", (out / "report.html").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- files written


def test_write_reports_writes_every_file_and_only_complete_ones(written):
    out, paths = written
    names = {p.name for p in paths}
    assert {"report.html", "report.css", "summary.md", "junit.xml"} <= names
    assert {"response_times.png", "latency_ecdf.png", "throughput.png", "resources.png",
            "loop_lag_ecdf.png"} <= names
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    for png in (p for p in paths if p.suffix == ".png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_loads_only_files_beside_it(written):
    out, _ = written
    html = (out / "report.html").read_text(encoding="utf-8")
    tags = _tags(html)
    sources = [a["src"] for t, a in tags if t == "img"]
    sources += [a["href"] for t, a in tags if t == "link"]
    assert "report.css" in sources and any(s.endswith(".png") for s in sources)
    for source in sources:
        assert "/" not in source and (out / source).exists(), source


def test_html_has_no_script_inline_style_or_data_uri(written):
    out, _ = written
    html = (out / "report.html").read_text(encoding="utf-8")
    tags = _tags(html)
    assert not [t for t, _ in tags if t in ("script", "style", "iframe", "object", "embed")]
    assert not [a for _, a in tags if "style" in a or any(k.startswith("on") for k in a)]
    assert "data:" not in html
    assert not [a for t, a in tags if t == "a" and not (a["href"] or "").startswith("https://")]


def test_environment_strings_are_escaped_everywhere(written):
    out, _ = written
    html = (out / "report.html").read_text(encoding="utf-8")
    summary = (out / "summary.md").read_text(encoding="utf-8")
    for text in (html, summary):
        assert comparisons.XSS not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    # the candidate's build URL is "javascript:alert(1)": shown as text, never as a link
    assert "javascript:alert(1)" in html
    assert 'href="javascript' not in html
    assert 'href="https://jenkins.example/job/perf/main/1/"' in html


def test_inconclusive_gated_metric_is_shown_loudly(written):
    out, _ = written
    html = (out / "report.html").read_text(encoding="utf-8")
    alert = html.split('class="alert alert-inconclusive"', 1)[1].split("</section>", 1)[0]
    assert "response time average @ 10 req/s" in alert
    assert "14 rounds per side" in alert
    assert '<h1 class="verdict-banner">REGRESSION' in html


def test_change_table_puts_counters_first_then_instructions_then_timing(regression):
    tables = view.step_tables(regression)
    assert [t.title for t in tables] == ["whole run", "5 req/s", "10 req/s"]
    assert [title.split(":")[0] for title, _ in tables[0].groups] == [
        "Counters", "Instructions under valgrind", "Timing"]
    timing = [row.key for row in dict(tables[1].groups)["Timing: judged on round values"]]
    assert timing == ["latency_mean@5/s", "responses_per_s@5/s"]
    # latency_p99 neither gates nor changed: folded away, in the same order of groups
    assert [row.key for _, rows in tables[1].minor for row in rows] == ["latency_p99@5/s"]


def test_evidence_is_stated_once_per_group_and_p_values_only_where_a_test_decided(regression):
    tables = view.step_tables(regression)
    counters = dict(tables[0].groups)["Counters: exact or nearly so, the most reliable evidence"]
    assert tables[0].notes["Counters: exact or nearly so, the most reliable evidence"] == (
        "evidence: counter, 1 round per side",)
    assert all(row.p_value == "n/a" and row.interval == "n/a" for row in counters)
    timing = dict(tables[1].groups)["Timing: judged on round values"]
    assert timing[0].p_value == "0.032" and timing[0].interval != "n/a"
    few = replace(regression.metrics[3], baseline_rounds=(0.01,), candidate_rounds=(0.02,))
    assert view.metric_row(few).p_value == "n/a"  # 1 + 1 rounds: no test could decide


def test_a_long_reason_shared_by_rows_is_written_once():
    long = "with 2 + 2 rounds the rank test cannot go below p = 0.33, more rounds are needed"
    rows = [comparisons.metric(key, "inconclusive", 0.01, 0.011, gate=True, reason=long)
            for key in ("latency_mean", "latency_p99")]
    rows[1] = replace(rows[1], reason=long + "; about 9 rounds per side would settle it")
    comparison = replace(comparisons.comparison(), metrics=tuple(rows))
    (table,) = view.step_tables(comparison)
    (_, shown), = table.groups
    assert [row.reason for row in shown] == [
        "see (a)", "see (a); about 9 rounds per side would settle it"]
    assert f"(a) {long}" in table.notes["Timing: judged on round values"]


def test_query_breakdown_has_the_thesis_columns_and_ranks_the_change(written):
    out, _ = written
    html = (out / "report.html").read_text(encoding="utf-8")
    section = html.split('<section id="queries">', 1)[1].split("</section>", 1)[0]
    for column in ("amount of calls", "total time", "max", "average", "min", "rows"):
        assert f'<th scope="col">{column}</th>' in section
    first_change = section.split("<tbody>", 1)[1].split("</tr>", 1)[0]
    assert "SELECT * FROM channels WHERE id = ?" in first_change
    assert "+400 ms" in first_change and "+800.0%" in first_change
    assert "subjects/peer/api.py:42 channels" in first_change


def test_details_sections_appear_only_with_their_data(tmp_path):
    plain = comparisons.comparison(with_details=False)
    html = report.render_html(plain)
    assert 'id="queries"' not in html and 'id="functions"' not in html
    html = report.render_html(comparisons.comparison())
    assert 'id="queries"' in html and 'id="functions"' in html
    assert "Objects/dictobject.c:insertdict" in html and "+300 k instr" in html


def test_report_without_samples_has_no_plots(tmp_path):
    base = comparisons.comparison()
    empty = tuple(replace(r, requests=RequestLog(), resources=None, probes={}, summary={})
                  for r in base.baseline.rounds)
    bare = replace(base, baseline=replace(base.baseline, rounds=empty),
                   candidate=replace(base.candidate, rounds=empty))
    paths = report.write_reports(bare, out_dir=tmp_path)
    assert not [p for p in paths if p.suffix == ".png"]
    assert "<img" not in (tmp_path / "report.html").read_text(encoding="utf-8")


# ---------------------------------------------------------------- summary.md


def test_summary_starts_with_the_marker_and_links_the_report(regression):
    text = report.render_summary(regression, URL)
    assert text.splitlines()[0] == report.SUMMARY_MARKER
    assert f"[Full report]({URL})" in text
    gated_rows = [line for line in text.splitlines() if line.startswith("| ") and "@" in line]
    assert len(gated_rows) == 3  # latency at two steps, responses/s at one


def test_summary_has_a_placeholder_without_a_safe_link(regression):
    for url in (None, "javascript:alert(1)"):
        text = report.render_summary(regression, url)
        assert "](" not in text and "placeholder" in text


def test_summary_keeps_markdown_syntax_in_labels_literal(regression):
    text = report.render_summary(replace(regression, headline="a | b *c* [x](y) d_e_f"), None)
    assert "a \\| b \\*c\\* \\[x\\](y) d\\_e\\_f" in text


# ---------------------------------------------------------------- junit.xml


def test_junit_has_one_case_per_gated_metric_with_failures_and_skips(regression):
    root = ET.fromstring(report.render_junit(regression))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [m.key for m in view.ordered(regression.gated)]
    assert {c.get("classname") for c in cases} == {"performance.api-stress"}
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    skipped = {c.get("name") for c in cases if c.find("skipped") is not None}
    assert failed == {"write_chars_per_request", "latency_mean@5/s"}
    assert skipped == {"latency_mean@10/s"}
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("7", "2", "1")


def test_junit_reports_a_refused_comparison_as_an_error(regression):
    refused = replace(regression, metrics=(), overall="refused",
                      headline="Refused: the CPU models differ.",
                      reasons=("cpu_model: 'A' (baseline) vs 'B' (candidate)",))
    assert "no metric was compared" in report.terminal_table(refused)
    assert "cpu\\_model: 'A'" in report.render_summary(refused, None)
    root = ET.fromstring(report.render_junit(refused))
    (case,) = root.iter("testcase")
    assert case.get("name") == "comparison" and case.find("error") is not None
    assert root.get("errors") == "1"


def test_junit_drops_characters_xml_cannot_hold(regression):
    odd = replace(regression, candidate=replace(regression.candidate,
                  experiment=replace(regression.candidate.experiment, name="api\x00stress")))
    ET.fromstring(report.render_junit(odd))  # raises on invalid XML


# ---------------------------------------------------------------- terminal and formatting


def test_terminal_table_is_aligned_and_ends_with_the_verdict(regression):
    text = report.terminal_table(regression)
    lines = text.splitlines()
    header = next(line for line in lines if "verdict" in line and "metric" in line)
    column = header.index("verdict")
    rows = [line for line in lines if re.search(r"(unchanged|regression|inconclusive)$", line)]
    assert len(rows) == len(regression.metrics) - 1  # the improvement row ends differently
    assert all(line.index(line.split()[-1]) == column for line in rows)
    assert "Overall: REGRESSION" in text and text.rstrip().endswith(regression.headline)


@pytest.mark.parametrize("value, unit, text", [
    (0.0143, "s", "14.3 ms"),
    (0.000412, "s", "0.412 ms"),
    (12.5, "s", "12.5 s"),
    (613 * 1024, "B", "613 KB"),
    (41.2e6, "B", "39.3 MB"),
    (512, "B", "512 B"),
    (2399.57, "KB/s", "2,399.6 KB/s"),
    (3.9, "1/s", "3.90 /s"),
    (1.5e9, "instr", "1.50 G instr"),
    (1234, "count", "1,234"),
    (None, "s", "n/a"),
])
def test_values_carry_their_units(value, unit, text):
    assert view.format_value(value, unit) == text


@pytest.mark.parametrize("change, text", [
    (-0.531, "-53.1%"), (0.0005, "+0.05%"), (0.0, "0%"), (None, "n/a")])
def test_changes_are_signed_percentages(change, text):
    assert view.format_change(change) == text


def test_intervals_p_values_and_detectable_change():
    assert view.format_interval(-0.02, 0.081) == "[-2.0%, +8.1%]"
    assert view.format_p(0.0079) == "0.0079"
    assert view.format_p(0.00001) == "<0.001"
    assert view.format_detectable(0.12) == "±12.0%"


def test_the_inconclusive_warning_is_not_repeated_beside_its_own_list(regression):
    repeated = "WARNING: 1 gated metric(s) inconclusive (latency_mean@10/s): could not tell"
    comparison = replace(regression, warnings=(repeated, "driver lag p99 was 3 ms"))
    assert view.shown_warnings(comparison) == ["driver lag p99 was 3 ms"]


def test_p_values_of_tests_that_found_nothing_read_not_significant(regression):
    row = view.metric_row(next(m for m in regression.metrics if m.key == "latency_p99@5/s"))
    assert row.p_value == "n.s." and row.p_adjusted == "1.000" and row.p_raw == "0.420"


def _change(statement, base_calls, cand_calls, base_total, cand_total, caller):
    return {"statement": statement, "operation": "execute", "baseline_calls": base_calls,
            "candidate_calls": cand_calls, "calls_change": cand_calls - base_calls,
            "baseline_total": base_total, "candidate_total": cand_total,
            "total_change": cand_total - base_total, "top_caller": caller}


def test_a_rewritten_query_is_one_changed_row_not_one_removed_and_one_added():
    rows = [
        _change("SELECT * FROM torrents WHERE title LIKE ?", 0, 100, 0.0, 0.9,
                "app/search.py:90 search via orm/core.py:4298 _fetch_objects"),
        _change("SELECT id FROM torrents WHERE title = ?", 100, 0, 0.2, 0.0,
                "app/search.py:88 search"),
        _change("INSERT INTO log VALUES (?)", 0, 5, 0.0, 0.01, "app/search.py:95 search"),
    ]
    paired = view.paired_changes(rows)
    assert [r["operation"] for r in paired] == ["changed", "execute"]
    top = paired[0]
    assert top["statement"] == ("SELECT id FROM torrents WHERE title = ? → "
                                "SELECT * FROM torrents WHERE title LIKE ?")
    assert top["total_change"] == pytest.approx(0.7) and top["calls_change"] == 0
    comparison = replace(comparisons.comparison(), details={"queries": {"changes": rows}})
    (finding, *_) = view.findings(comparison)
    assert "replaced by SELECT * FROM torrents" in finding.causes[0]


def test_a_rows_finding_names_the_statement_that_fetched_more_rows_not_the_slowest():
    """A real case (I Hate Money with 60x the bills): the statement whose time grew most was the
    project lookup; the rows came from the bills query. Rows per request is explained by rows."""
    project = _change("SELECT project.id FROM project WHERE project.id = ?", 10, 10, 0.01, 0.28,
                      "ihatemoney/models.py:524 Project.verify_token")
    bills = _change("SELECT bill.id FROM bill WHERE bill.project_id = ?", 2, 2, 0.02, 0.09,
                    "ihatemoney/models.py:210 Project.get_bills")
    project.update(baseline_rows=10.0, candidate_rows=10.0, rows_change=0.0)
    bills.update(baseline_rows=180.0, candidate_rows=12_000.0, rows_change=11_820.0)
    details = {"queries": {"changes": [project, bills]}}
    assert "Project.verify_token" in view._query_cause(details, worse=True)
    cause = view._query_cause(details, worse=True, by="rows")
    assert cause.startswith("query SELECT bill.id FROM bill") and "rows fetched +11,820" in cause
    assert "Project.get_bills" in cause
    assert view._query_cause(details, worse=False, by="rows") is None


def test_statement_changes_carry_the_rows_each_side_fetched():
    from harness.probes.breakdown import statement_changes

    def row(rows):
        return {"statement": "SELECT * FROM bill", "operation": "execute", "calls": 2.0,
                "total": 0.1, "rows": rows, "callers": [{"where": "app.py:3 f", "via": "",
                                                         "calls": 2.0, "total": 0.1}]}

    (change,) = statement_changes([row(180.0)], [row(12_000.0)])
    assert (change["baseline_rows"], change["candidate_rows"], change["rows_change"]) == (
        180.0, 12_000.0, 11_820.0)


def test_a_loop_counter_finding_names_the_call_site_that_left_the_loop():
    from harness import view

    def side(*sites):
        return {"sites": [{"kind": k, "where": w, "via": "", "calls_per_request": c}
                          for k, w, c in sites]}

    details = {"blocking": {
        "baseline": side(("sqlite", "app/store.py:113 rows", 1.0),
                         ("file_write", "app/api.py:78 log", 1.0)),
        "candidate": side(("file_write", "app/api.py:78 log", 1.0))}}
    assert view._loop_cause(details, "loop_queries_per_request", worse=False) == (
        "statement on the event loop at app/store.py:113 rows: 1 → 0 per request")
    assert view._loop_cause(details, "loop_queries_per_request", worse=True) is None
    assert view._loop_cause(details, "latency_mean", worse=False) is None
    only_files = view._loop_cause(details, "loop_file_bytes_per_request", worse=False)
    assert only_files is None  # the log write stayed: no file call moved


def test_failed_requests_are_one_finding_whichever_endpoints_they_failed_on():
    """Seen on I Hate Money collapsing: errors, errors [bill] and errors [members] took all three
    findings and hid the cause (rows per request +14,349% from Project.full_balance)."""
    metrics = (comparisons.metric("errors", "regression", 0.0, 36.0),
               comparisons.metric("errors[bill]", "regression", 0.0, 11.0),
               comparisons.metric("errors[members]", "regression", 0.0, 13.0),
               comparisons.metric("query_rows_per_request", "regression", 92.1, 13_305.0))
    comparison = replace(comparisons.comparison(), metrics=metrics, details={})
    texts = [finding.text for finding in view.findings(comparison)]
    assert sum("errors" in text for text in texts) == 1, texts
    assert any("rows / request" in text for text in texts), texts
