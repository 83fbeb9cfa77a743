"""Per-endpoint results: summaries per endpoint, series with `endpoint` set, per-endpoint gating."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest

from harness.compare import compare, resolve_policies
from harness.errors import ConfigError
from harness.experiment import load_experiment, validate_experiment
from harness.metrics import endpoint_metrics
from harness.results import RequestLog, Results, Round
from tests.synthetic import make_results, make_round


def _log(spec: list[tuple[str, float, int, int]]) -> RequestLog:
    """(endpoint, latency, status, nbytes) per request; service = latency."""
    n = len(spec)
    return RequestLog(
        endpoint=tuple(e for e, *_ in spec), intended=tuple(i * 0.01 for i in range(n)),
        sent=tuple(i * 0.01 for i in range(n)), latency=tuple(x for _, x, _, _ in spec),
        service=tuple(x for _, x, _, _ in spec), status=tuple(s for *_, s, _ in spec),
        nbytes=tuple(b for *_, b in spec),
        error=tuple(None if s == 200 else f"status {s}" for _, _, s, _ in spec))


def test_endpoint_metrics_summarise_each_endpoint_and_share_cpu_by_service_time():
    log = _log([("search", 0.030, 200, 100), ("search", 0.010, 200, 300),
                ("home", 0.010, 200, 50), ("home", 0.010, 500, 0)])
    out = endpoint_metrics(log, cpu_seconds=0.6,
                           probes={"sqlite": {"endpoints": {"search": {"queries": 6}}}})
    assert set(out) == {"home", "search"}
    assert out["search"]["latency_mean"] == pytest.approx(0.020)
    assert out["search"]["response_bytes_per_request"] == pytest.approx(200.0)
    assert out["search"]["errors"] == 0.0 and out["home"]["errors"] == 1.0
    # service time: search 0.040 of 0.060 in total, so 2/3 of the CPU over its 2 requests
    assert out["search"]["cpu_per_request"] == pytest.approx(0.6 * (0.04 / 0.06) / 2)
    assert out["home"]["cpu_per_request"] == pytest.approx(0.6 * (0.02 / 0.06) / 2)
    assert out["search"]["queries_per_request"] == pytest.approx(3.0)
    assert "queries_per_request" not in out["home"]


def test_one_endpoint_has_no_separate_summary():
    assert endpoint_metrics(_log([("a", 0.01, 200, 1)] * 3), cpu_seconds=1.0) == {}


def test_round_endpoints_survive_json_and_stay_absent_when_empty():
    rnd = make_round(0, {"latency_mean": 0.01},
                     endpoints={"search": {"latency_mean": 0.02}, "home": {"latency_mean": 0.005}})
    data = rnd.to_json()
    assert list(data["endpoints"]) == ["home", "search"]
    assert Round.from_json(data).endpoints == rnd.endpoints
    assert "endpoints" not in make_round(0, {}).to_json()


def _mixed(seed: int, rounds: int, *, search: float, home: float,
           policies=None) -> tuple[Results, Results]:
    """Two endpoints; the candidate scales search's and home's latency by the given factors."""
    rng = np.random.default_rng(seed)
    sides: dict[str, list[Round]] = {"baseline": [], "candidate": []}
    index = 0
    for _ in range(rounds):
        for side, (fs, fh) in (("baseline", (1.0, 1.0)), ("candidate", (search, home))):
            noise = float(np.exp(rng.normal(0.0, 0.03)))
            s, h = 0.040 * fs * noise, 0.020 * fh * noise
            per = {"search": {"latency_mean": s, "errors": 0.0},
                   "home": {"latency_mean": h, "errors": 0.0}}
            mix = {"latency_mean": (s + 3 * h) / 4, "errors": 0.0, "queries_per_request": 2.0}
            sides[side].append(make_round(index, mix, side=side, endpoints=per))
            index += 1
    return (make_results(sides["baseline"], label="baseline"),
            make_results(sides["candidate"], label="candidate", policies=policies))


def test_one_endpoint_slower_is_a_regression_even_when_the_mix_improves():
    base, cand = _mixed(1, 8, search=1.5, home=0.3)
    result = compare(base, cand)
    by_key = {m.key: m for m in result.metrics}
    assert by_key["latency_mean[search]"].verdict == "regression"
    assert by_key["latency_mean[search]"].gate
    assert by_key["latency_mean[home]"].verdict == "improvement"
    assert not by_key["latency_mean"].gate  # the mix is shown, the endpoints decide
    assert by_key["latency_mean"].verdict == "improvement"
    assert not by_key["errors[search]"].gate  # counters gate on the mix
    assert result.overall == "regression"
    assert "search" in result.headline


def test_an_endpoint_policy_overrides_its_metric():
    base, cand = _mixed(2, 8, search=1.5, home=1.0,
                        policies={"latency_mean@search": {"gate": False}})
    result = compare(base, cand)
    by_key = {m.key: m for m in result.metrics}
    assert not by_key["latency_mean[search]"].gate
    assert by_key["latency_mean[home]"].gate
    assert result.overall != "regression"


def test_endpoint_policy_starts_from_the_metric_policy():
    _, cand = _mixed(3, 1, search=1.0, home=1.0, policies={
        "errors": {"min_change": 0.5}, "errors@home": {"gate": False}})
    resolved = resolve_policies(cand)
    assert resolved["errors@home"].min_change == 0.5 and not resolved["errors@home"].gate


def test_unknown_metric_before_the_at_sign_is_refused():
    _, cand = _mixed(3, 1, search=1.0, home=1.0, policies={"latency_nope@home": {"gate": True}})
    with pytest.raises(ConfigError, match="latency_nope@home"):
        resolve_policies(cand)


MIXED_TOML = """\
[subject]
command = ["{python}", "-m", "app", "--port", "{port}"]

[workload]
rate = "5/s"
requests = 10

[[workload.endpoints]]
name = "search"
path = "/search"

[[workload.endpoints]]
name = "home"
path = "/"

[metrics."latency_mean@search"]
gate = true
min_change = "20%"
"""


def test_experiment_accepts_an_endpoint_metric(tmp_path):
    path = tmp_path / "mixed.toml"
    path.write_text(MIXED_TOML, encoding="utf-8")
    experiment = load_experiment(path)
    assert experiment.metrics["latency_mean@search"].min_change == pytest.approx(0.2)


@pytest.mark.parametrize("name, message", [
    ("latency_mean@serch", 'unknown endpoint "serch" (did you mean "search"?'),
    ("rss_max@search", '"rss_max" is not measured per endpoint'),
])
def test_experiment_refuses_unknown_endpoint_names(tmp_path, name, message):
    path = tmp_path / "mixed.toml"
    path.write_text(MIXED_TOML.replace("latency_mean@search", name), encoding="utf-8")
    problems = validate_experiment(path)
    assert len(problems) == 1 and message in problems[0], problems
    assert problems[0].startswith(f"{path}:")


ROOT = Path(__file__).resolve().parents[1]


def _harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.integration
def test_one_endpoint_slower_one_faster_fails_naming_the_slower(tmp_path):
    """tests/data/endpoints.toml: search 10 -> 60 ms, home 40 -> 5 ms (three times as frequent),
    so the mix's mean improves; the verdict must still be REGRESSION naming search. The changes
    are large so that a stall of the loaded CI machine in one round cannot blur them."""
    experiment = "tests/data/endpoints.toml"
    for label, sets in (("baseline", ()), ("candidate", ("--set", "search_ms=60",
                                                         "--set", "home_ms=5"))):
        proc = _harness("run", experiment, "--out", str(tmp_path / label), "--label", label,
                        "--rounds", "6", "--quiet", *sets)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _harness("compare", str(tmp_path / "baseline" / "results.json"),
                    str(tmp_path / "candidate" / "results.json"), "--out", str(tmp_path / "cmp"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    verdict = json.loads((tmp_path / "cmp" / "verdict.json").read_text())
    by_key = {m["key"]: m for m in verdict["metrics"]}
    assert by_key["latency_mean[search]"]["verdict"] == "regression"
    assert by_key["latency_mean[home]"]["verdict"] == "improvement"
    assert not by_key["latency_mean"]["gate"]
    assert by_key["latency_mean"]["change"] < 0  # the mix alone would have looked better
    assert "search" in verdict["headline"]
    summary = (tmp_path / "cmp" / "summary.md").read_text()
    top = summary.split("\n\n")[1:3]
    assert any("search" in part and "slower" in part for part in top), summary
    assert any("home" in part and "faster" in part for part in top), summary
    assert not [p for p in _subjects() if "endpoints_app" in " ".join(p.info["cmdline"] or [])]


def _subjects() -> list[psutil.Process]:
    return list(psutil.process_iter(["cmdline"]))


def test_side_names_add_the_variables_that_differ():
    from dataclasses import replace as swap

    from harness import view
    from harness.compare import compare as judge

    base, cand = _mixed(4, 1, search=1.0, home=1.0)
    base = swap(base, experiment=swap(base.experiment, variables={"db": "blocking", "x": "1"}))
    cand = swap(cand, experiment=swap(cand.experiment, variables={"db": "worker", "x": "1"}))
    assert view.side_names(judge(base, cand)) == ("baseline db=blocking", "candidate db=worker")


@pytest.mark.integration
@pytest.mark.skipif(not shutil.which("chromium"), reason="headless Chromium missing")
def test_screenshot_script_writes_a_png_and_leaves_no_browser(tmp_path):
    from harness import report
    from tests import comparisons

    report.write_reports(comparisons.comparison(), out_dir=tmp_path / "report")
    out = tmp_path / "shot.png"
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "screenshots" / "make.py"),
                           str(tmp_path / "report"), str(out), "--height", "600"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    left = [p for p in psutil.process_iter(["cmdline"])
            if "screenshot-profile-" in " ".join(p.info["cmdline"] or [])]
    assert not left


def test_a_baseline_without_endpoint_results_gives_one_warning_and_a_gated_mix():
    from dataclasses import replace as swap

    base, cand = _mixed(5, 6, search=1.0, home=1.0)
    base = swap(base, rounds=tuple(swap(r, endpoints={}) for r in base.rounds))
    result = compare(base, cand)
    assert [w for w in result.warnings if "per-endpoint" in w] == [
        "per-endpoint results exist only in the candidate (the other side's results.json has "
        "none); endpoints are compared only where both sides have them."]
    by_key = {m.key: m for m in result.metrics}
    assert by_key["latency_mean"].gate and "latency_mean[search]" not in by_key
