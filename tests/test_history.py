"""harness.history: the SQLite store, syncing from a folder and from a stand-in Jenkins, show."""

from __future__ import annotations

import json

import pytest

from harness import history, trendplot, trends
from harness.cli import main
from harness.errors import HarnessError
from harness.jenkins import JenkinsService
from harness.results import save_results
from tests.fakes.jenkins_server import FakeBuild, FakeJenkins
from tests.history_data import START, commit_id, nightly, write_nights

JOB = "perf-harness-nightly"
ARTIFACT = "perf/linux/api-quick/results.json"


def test_points_are_round_medians_and_instructions_per_endpoint():
    results = nightly(1, latency=0.01, instructions=1234.0, rounds=5)
    points = {(p.metric, p.endpoint): p for p in history.points_from_results(results)}
    latency = points["latency_mean", ""]
    assert latency.rounds == 5 and latency.gate and 0.009 < latency.value < 0.011
    assert not points["latency_p99", ""].gate
    instr = points["instructions_per_request", "channels"]
    assert instr.value == 1234.0 and instr.gate and instr.min_change == 0.01


def test_sync_from_a_folder_is_idempotent_and_indexed_by_commit(tmp_path):
    write_nights(tmp_path / "nights", range(10))
    db = tmp_path / "h.sqlite"
    first = history.sync(db=db, from_dir=tmp_path / "nights", log=lambda line: None)
    again = history.sync(db=db, from_dir=tmp_path / "nights", log=lambda line: None)
    assert len(first.added) == 10 and again.added == () and again.known == 10
    with history.HistoryStore(db) as store:
        keys = store.keys()
        names = [k.name for k in keys]
        assert "instructions_per_request[channels]" in names and "latency_mean" in names
        assert "latency_p99" not in names  # not gated: shown only with --all
        assert "latency_p99" in [k.name for k in store.keys(gated_only=False)]
        entries, path, gate, _ = store.series(keys[0])
    assert [e.commit for e in entries] == [commit_id(n) for n in range(10)]
    assert [e.build for e in entries] == list(range(100, 110))
    assert path == "experiments/api-quick.toml" and gate


def test_a_damaged_file_is_skipped_with_its_name_and_the_rest_is_stored(tmp_path):
    write_nights(tmp_path / "nights", range(3))
    bad = tmp_path / "nights" / "broken" / "results.json"
    bad.parent.mkdir()
    bad.write_text('{"format_version": 2, "label"')
    report = history.sync(db=tmp_path / "h.sqlite", from_dir=tmp_path / "nights",
                          log=lambda line: None)
    assert len(report.added) == 3
    assert len(report.skipped) == 1 and str(bad) in report.skipped[0]


def test_show_names_the_step_its_commit_range_and_the_bisect_command(tmp_path):
    write_nights(tmp_path / "nights", range(16), step_at=9)
    db = tmp_path / "h.sqlite"
    history.sync(db=db, from_dir=tmp_path / "nights", log=lambda line: None)
    analyses, written = trends.show(db=db, out=tmp_path / "out")
    by_name = {a.key.name: a for a in analyses}
    for name in ("instructions_per_request[channels]", "latency_mean"):
        steps = by_name[name].detection.steps
        assert len(steps) == 1, name
        assert (steps[0].previous, steps[0].index) == (8, 9)
        assert by_name[name].matters(steps[0])
    exact = by_name["instructions_per_request[channels]"].detection.steps[0]
    assert exact.change == pytest.approx(0.05, abs=1e-4)
    text = trends.terminal_text(analyses)
    assert f"harness bisect {commit_id(8)[:12]} {commit_id(9)[:12]} experiments/api-quick.toml" \
        in text
    data = json.loads((tmp_path / "out" / "history.json").read_text())
    assert tmp_path / "out" / "history.json" in written
    assert {s["name"] for s in data["series"]} == set(by_name)


def test_too_few_points_are_said_and_nothing_is_detected(tmp_path):
    write_nights(tmp_path / "nights", range(5), step_at=3)
    db = tmp_path / "h.sqlite"
    history.sync(db=db, from_dir=tmp_path / "nights", log=lambda line: None)
    analyses, _ = trends.show(db=db, metric="latency_mean")
    (latency,) = analyses
    assert not latency.detection.enough and latency.detection.steps == ()
    assert "5 points: too few for the timing model (it needs 8); nothing detected" \
        in trends.terminal_text(analyses)


def test_missing_nights_widen_the_commit_range_of_a_step(tmp_path):
    write_nights(tmp_path / "nights", range(18), step_at=9, skip=(7, 8, 9))
    db = tmp_path / "h.sqlite"
    history.sync(db=db, from_dir=tmp_path / "nights", log=lambda line: None)
    analyses, _ = trends.show(db=db, metric="instructions_per_request")
    step = analyses[0].detection.steps[0]
    entries = analyses[0].entries
    assert (entries[step.previous].commit, entries[step.index].commit) == (commit_id(6),
                                                                         commit_id(10))


def test_show_without_a_database_says_how_to_make_one(tmp_path):
    with pytest.raises(HarnessError, match="history sync"):
        trends.show(db=tmp_path / "none.sqlite")


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    path = tmp_path / "h.sqlite"
    path.write_text("this is not sqlite, just text long enough to be read as a header" * 20)
    with pytest.raises(HarnessError, match="not a history database"):
        history.HistoryStore(path)


def _ms(night: int) -> int:
    return int((START.timestamp() + night * 86400) * 1000)


@pytest.mark.integration
def test_sync_from_jenkins_stores_nightly_artifacts_once(tmp_path):
    with FakeJenkins() as fake:
        for night in range(1, 6):
            data = json.dumps(nightly(night, latency=0.01, instructions=1e6).to_json()).encode()
            result = "FAILURE" if night == 4 else "SUCCESS"
            fake.add_build(JOB, FakeBuild(night, result, _ms(night), commit_id(night),
                                          {ARTIFACT: data, "perf/report.html": b"<html>",
                                           "perf-out/baseline/results.json": data}))
        fake.add_build(JOB, FakeBuild(6, None, _ms(6), commit_id(6)))  # still running
        service = JenkinsService(fake.url, timeout=5, sleep=lambda s: None)
        db = tmp_path / "h.sqlite"
        first = history.sync(db=db, jenkins_job=JOB, service=service, log=lambda line: None)
        second = history.sync(db=db, jenkins_job=JOB, service=service, log=lambda line: None)
        artifact_requests = [r.path for r in fake.requests if "/artifact/" in r.path]
    assert sorted(first.added) == [f"jenkins:{JOB}#{n}:{ARTIFACT}" for n in (1, 2, 3, 5)]
    assert second.added == () and second.known == 4
    assert len(artifact_requests) == 4  # each nightly result once; not the report, not perf-out
    with history.HistoryStore(db) as store:
        key = next(k for k in store.keys() if k.metric == "latency_mean")
        entries, *_ = store.series(key)
    assert [(e.build, e.commit) for e in entries] == [(n, commit_id(n)) for n in (1, 2, 3, 5)]
    assert entries[0].url == f"{fake.url}/job/{JOB}/1/"


def test_cli_sync_and_show(tmp_path, capsys):
    write_nights(tmp_path / "nights", range(12), step_at=6)
    db = str(tmp_path / "h.sqlite")
    assert main(["history", "sync", "--from-dir", str(tmp_path / "nights"), "--db", db]) == 0
    assert "12 new run(s)" in capsys.readouterr().out
    assert main(["history", "show", "--db", db, "--metric", "instructions_per_request"]) == 0
    out = capsys.readouterr().out
    assert "step 1:" in out and "+5.00% (worse)" in out and "harness bisect" in out
    assert main(["history", "show", "--db", db, "--metric", "no_such"]) == 1
    assert "unknown" in capsys.readouterr().err


def test_cli_sync_needs_a_source(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["history", "sync", "--db", str(tmp_path / "h.sqlite")])
    assert exited.value.code == 1 and "--from-dir" in capsys.readouterr().err


def test_show_out_writes_one_trend_png_per_series(tmp_path):
    write_nights(tmp_path / "nights", range(12), step_at=6)
    db = tmp_path / "h.sqlite"
    history.sync(db=db, from_dir=tmp_path / "nights", log=lambda line: None)
    analyses, written = trends.show(db=db, out=tmp_path / "out")
    pngs = sorted(p.name for p in written if p.suffix == ".png")
    assert pngs == sorted(trendplot.file_name(a) for a in analyses)
    assert "trend-api-quick-linux-instructions_per_request-channels.png" in pngs
    for name in pngs:
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trend_plot_marks_a_candidate_value(tmp_path):
    write_nights(tmp_path / "nights", range(4))
    db = tmp_path / "h.sqlite"
    history.sync(db=db, from_dir=tmp_path / "nights", log=lambda line: None)
    analyses, _ = trends.show(db=db, metric="latency_mean")
    plain = trendplot.trend_plot(analyses[0], tmp_path / "a.png")
    marked = trendplot.trend_plot(analyses[0], tmp_path / "b.png", candidate=0.02,
                                  candidate_label="PR $1")
    assert plain.read_bytes() != marked.read_bytes()


def test_a_candidate_is_placed_against_the_newest_level(tmp_path, capsys):
    write_nights(tmp_path / "nights", range(16), step_at=9)
    db = tmp_path / "h.sqlite"
    history.sync(db=db, from_dir=tmp_path / "nights", log=lambda line: None)
    pr = tmp_path / "pr" / "results.json"
    save_results(nightly(30, latency=0.0123 * 1.3, instructions=2_000_000 * 1.05 * 1.02), pr)
    analyses, _ = trends.show(db=db, candidate=pr, metric="instructions_per_request")
    (instr,) = analyses
    assert instr.candidate_change == pytest.approx(0.02, abs=1e-5)  # vs the level after the step
    assert main(["history", "show", "--db", str(db), "--candidate", str(pr), "--out",
                 str(tmp_path / "out")]) == 0
    assert "+2.00% against the newest level" in capsys.readouterr().out
    data = json.loads((tmp_path / "out" / "history.json").read_text())
    assert {s["name"] for s in data["series"] if s["candidate"] is not None} == {
        "errors", "instructions_per_request[channels]", "latency_mean"}


def test_artifact_pattern_matches_one_folder_per_placeholder():
    pattern = history.artifact_pattern(history.ARTIFACT_TEMPLATE)
    assert pattern.fullmatch("perf/linux/api-quick/results.json")
    assert not pattern.fullmatch("perf/linux/api-quick/baseline/results.json")
    assert not pattern.fullmatch("perf-out/baseline/results.json")
