"""The offline pipeline checks (tox -e jobs): check_pipeline.py, the Groovy parse, job rendering."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("check_pipeline", ROOT / "ci" / "check_pipeline.py")
check_pipeline = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_pipeline)


@pytest.fixture
def tox_ini(tmp_path) -> Path:
    """A copy of the project's tox.ini (tests may break it), which defines every env called."""
    copy = tmp_path / "tox.ini"
    copy.write_text((ROOT / "tox.ini").read_text())
    return copy


def _jenkinsfile(tmp_path, old: str, new: str) -> Path:
    text = (ROOT / "Jenkinsfile").read_text()
    assert old in text, f"test setup: {old!r} is not in the Jenkinsfile any more"
    path = tmp_path / "Jenkinsfile"
    path.write_text(text.replace(old, new, 1))
    return path


def _problems(jenkinsfile: Path, tox_ini: Path) -> list[str]:
    return check_pipeline.check(ROOT, jenkinsfile, tox_ini, groovy=False)


def test_the_pipeline_holds_together_once_the_tox_envs_exist(tox_ini):
    assert _problems(ROOT / "Jenkinsfile", tox_ini) == []


def test_every_missing_tox_env_is_named(tmp_path):
    bare = tmp_path / "tox.ini"
    bare.write_text("[testenv]\ncommands = pytest\n\n[testenv:lint]\ncommands = pylint x\n\n"
                    "[testenv:coverage]\ncommands = coverage combine\n")
    problems = "\n".join(_problems(ROOT / "Jenkinsfile", bare))
    for env in ("coverage-baseline", "coverage-gate", "perf-baseline", "perf-run",
                "perf-ci", "perf-publish"):
        assert f"`tox -e {env}`" in problems


def test_a_missing_phase_is_reported(tmp_path, tox_ini):
    path = _jenkinsfile(tmp_path, "stage('Phase 2: coverage')", "stage('Coverage')")
    assert any("Phase 2" in p for p in _problems(path, tox_ini))


def test_a_matrix_axis_without_a_platform_is_reported(tmp_path, tox_ini):
    path = _jenkinsfile(tmp_path, "values 'linux', 'windows', 'macos'", "values 'linux', 'windows'")
    assert any("matrix axis PLATFORM" in p for p in _problems(path, tox_ini))


def test_a_harness_flag_that_does_not_exist_is_reported(tmp_path, tox_ini):
    path = _jenkinsfile(tmp_path, '"--candidate-commit ${env.GIT_COMMIT}"',
                        '"--candidate-comit ${env.GIT_COMMIT}"')
    problems = _problems(path, tox_ini)
    assert any("harness baseline fetch` has no flag --candidate-comit" in p for p in problems)


def test_a_tox_env_calling_an_unknown_harness_command_is_reported(tmp_path, tox_ini):
    tox_ini.write_text(tox_ini.read_text().replace("harness publish github", "harness publish gl"))
    assert any("`harness publish gl` is not a harness command" in p
               for p in _problems(ROOT / "Jenkinsfile", tox_ini))


def test_a_step_that_records_results_is_required(tmp_path, tox_ini):
    path = _jenkinsfile(tmp_path, "publishHTML(", "echo(")
    assert any("publishHTML" in p for p in _problems(path, tox_ini))


def test_job_definitions_are_checked_too(tmp_path, tox_ini):
    root = tmp_path / "project"
    shutil.copytree(ROOT / "ci", root / "ci")
    shutil.copytree(ROOT / "platforms", root / "platforms")
    shutil.copytree(ROOT / "harness", root / "harness")
    shutil.copy(ROOT / "Jenkinsfile", root / "Jenkinsfile")
    multijob = root / "ci" / "jobs" / "multijob.yaml"
    multijob.write_text(multijob.read_text().replace("--state pending", "--status pending")
                        .replace("'Phase 2: coverage'", "'Coverage'"))
    proc = subprocess.run([sys.executable, "ci/check_pipeline.py", "--root", str(root),
                           "--tox-ini", str(tox_ini), "--no-groovy"],
                          cwd=root, capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "has no flag --status" in proc.stderr
    assert "the multijob's phases" in proc.stderr


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.needs("groovy")
def test_groovy_parses_the_jenkinsfile_and_rejects_a_broken_one(tmp_path):
    assert check_pipeline.groovy_problems(ROOT / "Jenkinsfile") == []
    broken = _jenkinsfile(tmp_path, "stages {", "stages {{")
    problems = check_pipeline.groovy_problems(broken)
    assert problems and any("does not parse" in p for p in problems)
    unclosed = _jenkinsfile(tmp_path, "        }\n    }\n}\n", "        }\n    }\n")
    assert check_pipeline.groovy_problems(unclosed)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.needs("groovy")
def test_the_check_command_runs_groovy_and_exits_0(tox_ini):
    proc = subprocess.run([sys.executable, "ci/check_pipeline.py", "--tox-ini", str(tox_ini)],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "pipeline checks passed" in proc.stdout


@pytest.mark.integration
def test_jenkins_jobs_renders_the_three_kinds_of_job(tmp_path):
    jenkins_jobs = shutil.which("jenkins-jobs")
    if jenkins_jobs is None:
        pytest.skip("jenkins-job-builder is not installed (tox -e jobs installs it)")
    proc = subprocess.run([jenkins_jobs, "test", "ci/jobs", "-o", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    rendered = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert "<org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject" in \
        rendered["perf-harness"]
    nightly = rendered["perf-harness-nightly"]
    assert "<hudson.triggers.TimerTrigger>" in nightly and "<string>baseline</string>" in nightly
    pr = rendered["perf-harness-pr"]
    assert "<com.tikal.jenkins.plugins.multijob.MultiJobProject>" in pr
    phases = [pr.index(f"<phaseName>Phase {n}") for n in (1, 2, 3)]
    assert phases == sorted(phases)
    for platform in ("linux", "windows", "macos"):
        assert "tox -e py" in rendered[f"perf-harness-tests-{platform}"]
    assert "<hudson.tasks.BatchFile>" in rendered["perf-harness-tests-windows"]
    assert "tox -e coverage-gate" in rendered["perf-harness-coverage"]
    assert "tox -e perf-compare" in rendered["perf-harness-perf"]
