"""The offline pipeline checks (tox -e jobs): check_pipeline.py, the Groovy parse, job rendering."""

from __future__ import annotations

import importlib.util
import json
import os
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
    path = _jenkinsfile(tmp_path, '--candidate-commit ${candidate}")',
                        '--candidate-comit ${candidate}")')
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
    multijob.write_text(multijob.read_text().replace("--state final", "--status final")
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


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, str]:
    """`jenkins-jobs test ci/jobs` once for the module (each render takes seconds)."""
    return _render(tmp_path_factory.mktemp("jobs"))


def _render(tmp_path) -> dict[str, str]:
    beside = Path(sys.executable).parent / "jenkins-jobs"
    jenkins_jobs = str(beside) if beside.exists() else shutil.which("jenkins-jobs")
    if jenkins_jobs is None:
        pytest.skip("jenkins-job-builder is not installed (tox -e jobs installs it)")
    proc = subprocess.run([jenkins_jobs, "test", "ci/jobs", "-o", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return {p.name: p.read_text() for p in tmp_path.iterdir()}


def _xml(text: str):
    import xml.etree.ElementTree as ET

    return ET.fromstring(text.encode())


def _jenkinsfile_cron() -> str:
    import re

    match = re.search(r"env\.PERF_NIGHTLY_CRON \?: '([^']+)'", (ROOT / "Jenkinsfile").read_text())
    assert match, "the Jenkinsfile's cron default"
    return match.group(1)


@pytest.mark.integration
def test_jenkins_jobs_renders_the_three_kinds_of_job(rendered):
    assert "<org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject" in \
        rendered["perf-harness"]
    nightly = rendered["perf-harness-nightly"]
    assert "<hudson.triggers.TimerTrigger>" in nightly
    pr = rendered["perf-harness-pr"]
    assert "<com.tikal.jenkins.plugins.multijob.MultiJobProject>" in pr
    phases = [pr.index(f"<phaseName>Phase {n}") for n in (1, 2, 3, 4)]
    assert phases == sorted(phases)
    for platform in ("linux", "windows", "macos"):
        assert "tox -e py" in rendered[f"perf-harness-tests-{platform}"]
    assert "<hudson.tasks.BatchFile>" in rendered["perf-harness-tests-windows"]
    assert "tox -e coverage-gate" in rendered["perf-harness-coverage"]
    assert "tox -e perf-ci" in rendered["perf-harness-perf"]


@pytest.mark.integration
def test_the_multibranch_folder_has_no_job_properties(rendered):
    """cloudbees-folder reads a folder's <properties> as folder properties: a job-level build
    discarder there makes the multibranch job fail to load (defect 6)."""
    folder = _xml(rendered["perf-harness"])
    properties = folder.find("properties")
    assert properties is not None and list(properties) == []
    assert "BuildDiscarderProperty" not in rendered["perf-harness"]


@pytest.mark.integration
def test_copy_artifact_permissions_are_granted_to_the_jobs_that_copy(rendered):
    """Copy Artifact 1.44+ refuses to copy unless the source job names the copier (defect 5)."""

    def granted(job: str) -> set[str]:
        node = _xml(rendered[job]).find(
            "properties/hudson.plugins.copyartifact.CopyArtifactPermissionProperty")
        assert node is not None, f"{job} grants no copy permission"
        return {e.text for e in node.iter("string")}

    copies = {}
    for name, text in rendered.items():
        for step in _xml(text).iter("hudson.plugins.copyartifact.CopyArtifact"):
            copies.setdefault(step.findtext("project"), set()).add(name)
    assert copies, "no Copy Artifact steps rendered"
    for source, copiers in copies.items():
        assert copiers <= granted(source), (source, copiers)


@pytest.mark.integration
def test_timers_the_nightly_keeps_and_no_deprecated_pr_trigger(rendered):
    nightly = _xml(rendered["perf-harness-nightly"])
    specs = [t.findtext("spec") for t in nightly.iter("hudson.triggers.TimerTrigger")]
    assert specs == [_jenkinsfile_cron()]  # Declarative replaces it with the Jenkinsfile's
    assert not any("TimerTrigger" in text for name, text in rendered.items()
                   if name != "perf-harness-nightly")
    assert not any("ghprb" in text.lower() for text in rendered.values())
    names = [p.findtext("name") for p in nightly.iter("hudson.model.ChoiceParameterDefinition")]
    assert names == ["PERF_MODE"]
    first = next(nightly.iter("hudson.model.ChoiceParameterDefinition")).find("choices")
    assert [e.text for e in first.iter("string")][0] == "auto"  # as the Jenkinsfile declares


@pytest.mark.integration
def test_jobs_building_pull_request_code_hold_no_token(rendered):
    """A job checking out ${sha1} runs the PR's tox.ini and harness/: no credentials bound."""
    for name, text in rendered.items():
        if "${sha1}" in text:
            assert "SecretBuildWrapper" not in text, name
            assert "WipeWorkspace" not in text, name  # tox envs are kept between builds


def test_the_nightly_job_is_named_alike_everywhere():
    import re

    jenkinsfile = re.search(r"env\.PERF_NIGHTLY_JOB \?: '([^']+)'",
                            (ROOT / "Jenkinsfile").read_text()).group(1)
    tox = set(re.findall(r"\{env:PERF_NIGHTLY_JOB:([^}]+)\}", (ROOT / "tox.ini").read_text()))
    jobs = re.search(r"nightly-job: (\S+)", (ROOT / "ci/jobs/defaults.yaml").read_text()).group(1)
    assert tox == {jenkinsfile} and jobs == jenkinsfile


def test_a_token_bound_outside_trusted_code_is_reported(tmp_path, tox_ini):
    path = _jenkinsfile(tmp_path, "toxEnv('coverage')",
                        "withCredentials([string(credentialsId: 'github-token', "
                        "variable: 'GITHUB_TOKEN')]) { toxEnv('coverage') }")
    assert any("withCredentials outside `trusted" in p for p in _problems(path, tox_ini))


def test_no_pipeline_wide_timeout_that_would_count_queue_time():
    text = (ROOT / "Jenkinsfile").read_text()
    options = text[text.index("    options {"):text.index("    environment {")]
    assert "timeout(" not in options


def test_docs_name_the_webhook():
    docs = (ROOT / "docs" / "jenkins.md").read_text()
    assert "/github-webhook/" in docs and "Pull requests" in docs


def _coverage_data(directory: Path, name: str) -> None:
    (directory / "mod.py").write_text("def f():\n    return 1\n")
    (directory / "run.py").write_text("import mod\nmod.f()\n")
    subprocess.run([sys.executable, "-m", "coverage", "run", "--data-file", name, "run.py"],
                   cwd=directory, check=True, capture_output=True)


@pytest.mark.integration
def test_the_coverage_env_combines_the_three_platforms_unstashed_data(tmp_path):
    """Phase 2 sets no PERF_PLATFORM: the env must not look for .coverage.local.* (defect 1)."""
    work = tmp_path / "ws"
    work.mkdir()
    shutil.copy(ROOT / "tox.ini", work / "tox.ini")
    (work / "pyproject.toml").write_text("[tool.coverage.run]\nbranch = true\n")
    for platform in ("linux", "windows", "macos"):
        _coverage_data(work, f".coverage.{platform}.host.1.abc")
    config = tmp_path / "shim.json"
    config.write_text(json.dumps({"venv_bin": str(Path(sys.executable).parent),
                                  "fast_tests": [], "record": str(tmp_path / "calls.jsonl"),
                                  "cache": str(tmp_path / "cache")}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERF_")}
    proc = subprocess.run([sys.executable, str(ROOT / "ci" / "rehearsal" / "tox_shim.py"),
                           str(config), "-e", "coverage"], cwd=work, env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((work / "coverage.json").read_text())["totals"]["percent_covered"] == 100
