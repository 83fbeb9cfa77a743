"""JMeter JTL import: the CSV and XML variants JMeter writes, malformed files, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.jtl import CLOSED_LOOP_WARNING, JtlError, import_jtl, read_jtl, request_log
from harness.results import load_results

DATA = Path(__file__).parent / "data" / "jtl"


def test_headerless_csv_of_jmeter_2_13_uses_its_default_columns():
    samples = read_jtl(DATA / "jmeter213-noheader.csv")
    assert len(samples) == 5
    assert samples[0].elapsed == pytest.approx(0.033)
    assert samples[1].start - samples[0].start == pytest.approx(0.039, abs=1e-6)
    assert {s.label for s in samples} == {"root"}
    assert all(s.success and s.code == 200 and s.nbytes == 685 for s in samples)


def test_csv_with_header_keeps_failures_with_their_message():
    samples = read_jtl(DATA / "jmeter5-header.csv")
    assert [s.code for s in samples] == [200, 200, 200, 500, 0]
    log = request_log(samples, samples[0].start)
    assert log.error[:3] == (None, None, None)
    assert log.error[3] == "HTTP 500 Test failed: code expected to contain /200/"
    assert log.error[4] == "Non HTTP response message: Read timed out, after 1 s"
    assert log.intended == log.sent and log.intended[2] == pytest.approx(0.4)
    assert log.endpoint[2] == "health"


def test_headerless_csv_of_jmeter_5_and_named_columns_agree():
    default = read_jtl(DATA / "jmeter5-noheader.csv")
    named = read_jtl(DATA / "jmeter5-noheader.csv", columns=(
        "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,"
        "failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect"
    ).split(","))
    assert default == named and len(default) == 3 and default[0].nbytes == 614400


def test_xml_jtl_counts_top_level_samples_only():
    samples = read_jtl(DATA / "jmeter-results.xml")
    assert [s.label for s in samples] == ["channels", "home", "JSR223 check"]
    assert samples[1].elapsed == pytest.approx(0.040) and samples[1].nbytes == 900
    assert not samples[2].success


def test_tab_separated_with_formatted_time_stamps_grouped_by_a_column(tmp_path):
    results = import_jtl([DATA / "tabs-dates-rounds.tsv"], out_dir=tmp_path, label="baseline",
                         round_column="run")
    assert [len(r.requests) for r in results.rounds] == [2, 3]
    assert results.rounds[1].requests.intended == pytest.approx((0.0, 0.5, 1.0))
    assert results.rounds[1].summary["latency_mean"] == pytest.approx(0.027)


@pytest.mark.parametrize(("name", "where", "what"), [
    ("bad-short-row.csv", ":3:", "5 fields where the header has 6"),
    ("bad-elapsed.csv", ":3:", "elapsed 'fast'"),
    ("bad-truncated.xml", ":4:", "not well-formed XML"),
])
def test_malformed_files_name_the_line(name, where, what):
    with pytest.raises(JtlError) as info:
        read_jtl(DATA / name)
    assert f"{name}{where}" in str(info.value) and what in str(info.value)


def test_unknown_headerless_layout_and_missing_round_column_are_errors(tmp_path):
    odd = tmp_path / "odd.csv"
    odd.write_text("1700000000000,12,x\n")
    with pytest.raises(JtlError, match=r"odd.csv:1: no header line and 3 columns"):
        read_jtl(odd)
    with pytest.raises(JtlError, match="no column 'run'"):
        read_jtl(DATA / "jmeter5-header.csv", round_column="run")


def test_import_then_compare_two_jmeter_runs(tmp_path, capsys):
    for side, files in (("baseline", ["jmeter5-noheader.csv", "jmeter213-noheader.csv"]),
                        ("candidate", ["jmeter213-noheader.csv", "jmeter5-noheader.csv"])):
        code = main(["import", "jtl", *(str(DATA / f) for f in files), "--out",
                     str(tmp_path / side), "--label", side])
        assert code == 0
    assert "2 rounds, 8 samples" in capsys.readouterr().out
    baseline = load_results(tmp_path / "baseline" / "results.json")
    assert [r.index for r in baseline.rounds] == [0, 1]
    assert CLOSED_LOOP_WARNING in baseline.warnings
    code = main(["compare", str(tmp_path / "baseline" / "results.json"),
                 str(tmp_path / "candidate" / "results.json"), "--out", str(tmp_path / "cmp")])
    out = capsys.readouterr().out
    assert code in (0, 2)
    assert "closed-loop" in out
    assert (tmp_path / "cmp").is_dir()


def test_import_of_a_missing_file_is_error_1_and_writes_nothing(tmp_path, capsys):
    code = main(["import", "jtl", str(tmp_path / "nope.jtl"), "--out", str(tmp_path / "o")])
    assert code == 1
    assert "nope.jtl: cannot be read" in capsys.readouterr().err
    assert not (tmp_path / "o" / "results.json").exists()


def test_compare_writes_performance_plugin_csvs_that_read_back(tmp_path, capsys):
    for side in ("baseline", "candidate"):
        import_jtl([DATA / "jmeter5-header.csv"], out_dir=tmp_path / side, label=side)
    code = main(["compare", str(tmp_path / "baseline" / "results.json"),
                 str(tmp_path / "candidate" / "results.json"), "--out", str(tmp_path / "cmp"),
                 "--perf-plugin-csv"])
    assert code in (0, 1, 2)
    assert "perf-plugin/candidate.csv (Jenkins Performance plugin)" in capsys.readouterr().out
    path = tmp_path / "cmp" / "perf-plugin" / "baseline.csv"
    assert path.read_text().splitlines()[0] == (
        "timeStamp,elapsed,label,responseCode,responseMessage,threadName,success,bytes,Latency")
    again = read_jtl(path)  # a JMeter CSV: our own reader (and the plugin's) takes it back
    original = read_jtl(DATA / "jmeter5-header.csv")
    assert [s.elapsed for s in again] == [s.elapsed for s in original]
    assert [s.success for s in again] == [True, True, True, False, False]
    assert [s.label for s in again] == [s.label for s in original]
    assert again[3].code == 500 and again[0].nbytes == 614400


def test_pipe_separated_with_the_older_time_column_and_two_digit_years():
    samples = read_jtl(DATA / "pipes-time-column.csv")
    assert [s.elapsed for s in samples] == [1.187, 0.047]
    assert [s.success for s in samples] == [True, False]
    assert samples[1].message == "Test Failed: expected to contain: password etc."
    assert samples[0].start == samples[1].start == pytest.approx(1044519702.0)
