"""Tests of harness.instructions: result shape, function changes, and real runs under valgrind."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness import instructions, valgrind
from harness.errors import ConfigError
from harness.experiment import (
    Endpoint,
    Experiment,
    InstructionTier,
    Probes,
    Readiness,
    Rounds,
    SetupCommand,
    Subject,
    Workload,
)

ROOT = Path(__file__).resolve().parent.parent
needs_valgrind = pytest.mark.needs("valgrind")
SEED = "import pathlib, sys; pathlib.Path(sys.argv[1], 'seed.txt').write_text('seeded')"


def make_experiment(extra_work: str = "0", *, ready: Readiness | None = None,
                    requests: int = 10, workload: bool = True) -> Experiment:
    subject = Subject(
        command=("{python}", "tests/data/instructions_app.py", "--port", "{port}",
                 "--state-dir", "{state_dir}"),
        env={"EXTRA_WORK": "{extra}"},
        setup=(SetupCommand(command=("{python}", "-c", SEED, "{state_dir}")),),
        ready=ready or Readiness(http="/health"),
    )
    load = Workload(endpoints=(Endpoint(path="/work", name="work"),), rates=(1.0,))
    return Experiment(name="tiny", path="tiny.toml", sha256="0" * 64, description="",
                      subject=subject, workload=load if workload else None, probes=Probes(),
                      rounds=Rounds(), metrics={}, variables={"extra": extra_work},
                      instructions=InstructionTier(enabled=True, requests=requests))


def side(per_request: float, functions: list[tuple[str, int, int]], n: int = 10) -> dict:
    return {"tool": "cachegrind", "requests": n, "min_change": 0.01,
            "endpoints": {"work": {"per_request": per_request, "total_n": 0, "total_0": 0}},
            "functions": {"work": [{"function": f, "ir_n": a, "ir_0": b} for f, a, b in functions]}}


def test_function_changes_rank_by_absolute_change_per_request() -> None:
    baseline = side(100.0, [("a.c:f", 1000, 0), ("a.c:g", 500, 0), ("a.c:gone", 300, 100)])
    candidate = side(110.0, [("a.c:f", 1010, 0), ("a.c:g", 100, 0), ("a.c:new", 250, 0)])
    rows = instructions.function_changes(baseline, candidate, top=3)
    assert [row["function"] for row in rows] == ["a.c:g", "a.c:new", "a.c:gone"]
    assert rows[0] == {"endpoint": "work", "function": "a.c:g", "baseline": 50.0,
                       "candidate": 10.0, "change": -40.0}
    assert rows[2]["candidate"] == 0.0  # absent from a side's top list counts as 0


def test_relative_changes_flag_at_the_threshold() -> None:
    rows = instructions.relative_changes(side(100.0, []), side(101.0, []))
    assert rows[0]["change"] == pytest.approx(0.01) and rows[0]["flagged"]
    rows = instructions.relative_changes(side(100.0, []), side(100.5, []))
    assert not rows[0]["flagged"]


def test_without_valgrind_the_tier_is_unavailable_with_a_reason(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(valgrind, "unavailable_reason", lambda platform=None: "no valgrind here")
    result = instructions.run_instruction_tier(make_experiment(), work_dir=tmp_path,
                                               project_root=ROOT, python=sys.executable)
    assert result["available"] is False and result["reason"] == "no valgrind here"
    assert result["endpoints"] == {}


def test_an_experiment_without_endpoints_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="endpoints"):
        instructions.run_instruction_tier(make_experiment(workload=False), work_dir=tmp_path,
                                          project_root=ROOT, python=sys.executable)


@needs_valgrind
@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(120)
def test_extra_work_per_request_raises_instructions_and_no_change_does_not(tmp_path: Path) -> None:
    def run(name: str, experiment: Experiment) -> dict:
        return instructions.run_instruction_tier(experiment, work_dir=tmp_path / name,
                                                 project_root=ROOT, python=sys.executable)

    baseline = run("a", make_experiment("0"))
    same = run("b", make_experiment("0"))
    slower = run("c", make_experiment("50"))  # about 2% more instructions per request
    work = baseline["endpoints"]["work"]
    assert work["non_2xx"] == 0 and work["total_n"] > work["total_0"] > 0
    assert abs(instructions.relative_changes(baseline, same)[0]["change"]) < 0.001
    change = instructions.relative_changes(baseline, slower)[0]
    assert change["flagged"] and change["change"] > 0.01
    top = instructions.function_changes(baseline, slower, top=5)
    assert top[0]["change"] > 0  # the function that got more expensive leads the list
    state = tmp_path / "a" / "instructions" / "run-002" / "state"
    assert (state / "seed.txt").read_text() == "seeded"  # a fresh copy of the seeded state


@needs_valgrind
@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(120)
def test_readiness_from_a_log_line_needs_no_request(tmp_path: Path) -> None:
    experiment = make_experiment(ready=Readiness(http=None, log="^ready$"), requests=3)
    result = instructions.run_instruction_tier(experiment, work_dir=tmp_path, project_root=ROOT,
                                               python=sys.executable)
    work = result["endpoints"]["work"]
    assert work["non_2xx"] == 0 and work["per_request"] > 0
    assert result["functions"]["work"][0]["ir_n"] > result["functions"]["work"][0]["ir_0"]


@needs_valgrind
@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_second_run_shares_the_idle_count_and_measures_the_requests_again(
        tmp_path: Path) -> None:
    tier = instructions.InstructionTier(make_experiment(requests=5), work_dir=tmp_path,
                                        project_root=ROOT, python=sys.executable)
    first, second = tier.run(), tier.run()
    assert (first["idle"], second["idle"]) == ("measured", "shared")
    one, two = first["endpoints"]["work"], second["endpoints"]["work"]
    assert one["total_0"] == two["total_0"] and two["total_n"] > two["total_0"]
    assert abs(two["per_request"] / one["per_request"] - 1) < 0.001
    runs = sorted(p.name for p in (tmp_path / "instructions").glob("run-*"))
    assert runs == ["run-001", "run-002", "run-003"]  # 3 valgrind starts for 2 runs, not 4
    assert tier.last_busy_seconds > 0


def test_a_stopped_tier_starts_no_subject(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from harness.errors import SubjectError

    monkeypatch.setattr(valgrind, "unavailable_reason", lambda platform=None: None)
    tier = instructions.InstructionTier(make_experiment(), work_dir=tmp_path, project_root=ROOT,
                                        python=sys.executable)
    tier.stop.set()  # harness perf: the other side failed or the session was interrupted
    with pytest.raises(SubjectError, match="other side"):
        tier.run()
    assert not list((tmp_path / "instructions").glob("run-*"))
