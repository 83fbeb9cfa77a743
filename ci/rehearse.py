"""The rehearsal: the real Jenkinsfile, evaluated by ci/rehearsal/stub.groovy, against stand-ins.

A `Session` builds what every scenario shares once: an origin repository holding this project
(main with two commits, pull-request refs as GitHub serves them under refs/pull/N/head), a
`tox` that runs the checkout's own tox.ini commands (ci/rehearsal/tox_shim.py), a stand-in
Jenkins (security on: anonymous gets 403) and a stand-in GitHub. `Session.run(...)` runs the
Jenkinsfile once as Jenkins would for one job (the nightly job or a PR of the multibranch job)
on the agents given, and returns what happened: build result, stage results, steps with their
directory and bound variables, archived files, log, and the requests GitHub received.

tests/test_rehearsal.py holds the scenarios; `tox -e jobs` runs them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUB = ROOT / "ci" / "rehearsal" / "stub.groovy"
SHIM = ROOT / "ci" / "rehearsal" / "tox_shim.py"
EXPERIMENT = ROOT / "ci" / "rehearsal" / "smoke.toml"
NIGHTLY_JOB = "perf-harness-nightly"
JENKINS_USER, JENKINS_TOKEN = "perf-ci", "jenkins-rehearsal-token-5f1c"
GITHUB_TOKEN = "ghp_rehearsal_token_0123456789abcdef"
REPO = "octo/project"
TIMER = "hudson.triggers.TimerTrigger$TimerTriggerCause"
# Padding every /channels document: response bytes per request, an exact gated counter, grow.
REGRESSION_PATCH = ('        channels.append(channel)\n',
                    '        channel["padding"] = "x" * 256\n        channels.append(channel)\n')

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "ci"))
from check_pipeline import java_home  # noqa: E402

from tests.fakes.github_server import FakeGitHub  # noqa: E402
from tests.fakes.jenkins_server import FakeBuild, FakeJenkins  # noqa: E402


def agents(*, perf: tuple[str, ...] = ("linux",), cells: bool = True) -> list[dict]:
    """Test cells for the three platforms, and perf agents for the platforms given."""
    out = []
    if cells:
        out += [{"name": f"{p}-1", "labels": [p], "unix": p != "windows"}
                for p in ("linux", "windows", "macos")]
    out += [{"name": f"perf-{p}", "labels": ["perf", p], "unix": p != "windows"} for p in perf]
    return out


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@localhost",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@localhost"}
    proc = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env=env)
    return proc.stdout.strip()


@dataclass
class Outcome:
    """What one rehearsed build did."""

    result: str
    stages: dict[str, str]
    steps: list[dict]
    archived: list[str]
    log: list[str]
    archive_dir: Path
    statuses: list[dict] = field(default_factory=list)
    crash: str | None = None

    def commands(self, needle: str = "") -> list[dict]:
        return [s for s in self.steps if s["step"] in ("sh", "bat") and needle in s["script"]]

    def text(self) -> str:
        return "\n".join(self.log)


class Session:
    """Shared across scenarios: origin repository, tox shim, stand-ins. A context manager."""

    def __init__(self, base: Path, fast_tests: tuple[str, ...] = ("tests/test_units.py",),
                 replace: dict[str, str] | None = None):
        self.base = base
        self.replace = replace or {}  # project files replaced in main (to rehearse old ones)
        self.origin = base / "origin"
        self.bin = base / "bin"
        self.record = base / "tox-calls.jsonl"
        self.fast_tests = fast_tests
        self.jenkins = FakeJenkins(user=JENKINS_USER, token=JENKINS_TOKEN)
        self.github = FakeGitHub(repo=REPO, token=GITHUB_TOKEN)
        self.commits: dict[str, str] = {}
        self.runs = 0

    def __enter__(self) -> Session:
        self.jenkins.__enter__()
        self.github.__enter__()
        self._origin()
        self._shim()
        return self

    def __exit__(self, *exc: object) -> None:
        self.github.__exit__(*exc)
        self.jenkins.__exit__(*exc)

    # -- setup -----------------------------------------------------------------------------
    def _origin(self) -> None:
        """main: m1 (this project) -> m2 (changes docs and harness/errors.py). Pull requests:
        7 changes README and is up to date with main (GitHub Branch Source makes no merge
        commit); 8 pads /channels (a regression) and branched off m1 (a merge commit); 9 adds
        an uncovered function off m1; 10 breaks the subject's start (the harness cannot
        measure)."""
        work = self.base / "work"
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                                check=True, capture_output=True, text=True).stdout.split("\n")
        for name in filter(None, listed):
            source = ROOT / name
            if source.is_file():
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, work / name)
        shutil.copy(EXPERIMENT, work / "experiments" / "smoke.toml")
        for name, text in self.replace.items():
            (work / name).write_text(text)
        git(work, "init", "-q", "-b", "main")
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", "m1: the project")
        self.commits["m1"] = git(work, "rev-parse", "HEAD")
        (work / "docs" / "rehearsal-note.md").write_text("main moved on\n")
        with open(work / "harness" / "errors.py", "a", encoding="utf-8") as out:
            out.write("# main moved on (a Python change the PRs branched off m1 do not have)\n")
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", "m2: docs")
        self.commits["m2"] = git(work, "rev-parse", "HEAD")

        def pr(number: int, base: str, path: str, old: str | None, new: str) -> None:
            git(work, "checkout", "-q", "-b", f"pr{number}", self.commits[base])
            target = work / path
            text = target.read_text() if target.exists() else ""
            target.write_text(text.replace(old, new, 1) if old else text + new)
            git(work, "commit", "-qam", f"PR {number}")
            self.commits[f"pr{number}"] = git(work, "rev-parse", "HEAD")
            git(work, "update-ref", f"refs/pull/{number}/head", self.commits[f"pr{number}"])
            git(work, "checkout", "-q", "main")

        pr(7, "m2", "README.md", None, "\nA line from pull request 7.\n")
        pr(8, "m1", "subjects/peer/api.py", *REGRESSION_PATCH)
        pr(9, "m1", "harness/units.py", None, "\n\ndef _rehearsal_unused():\n    return 1\n")
        pr(10, "m2", "subjects/peer/__main__.py", "from __future__ import annotations\n",
           'from __future__ import annotations\nraise SystemExit("broken by PR 10")\n')
        git(self.base, "clone", "-q", "--bare", str(work), str(self.origin))
        for number in (7, 8, 9, 10):
            git(self.origin, "update-ref", f"refs/pull/{number}/head",
                self.commits[f"pr{number}"])

    def _shim(self) -> None:
        self.bin.mkdir(parents=True, exist_ok=True)
        config = self.base / "tox-shim.json"
        config.write_text(json.dumps({"venv_bin": str(Path(sys.executable).parent),
                                      "fast_tests": list(self.fast_tests),
                                      "record": str(self.record),
                                      "cache": str(self.base / "tested-trees")}))
        tox = self.bin / "tox"
        tox.write_text(f"#!/bin/sh\nexec {sys.executable} {SHIM} {config} \"$@\"\n")
        tox.chmod(0o755)

    # -- the nightly's artifacts become builds of the stand-in Jenkins ---------------------
    def publish_nightly(self, outcome: Outcome, number: int, commit: str,
                        result: str = "SUCCESS") -> None:
        artifacts = {name: (outcome.archive_dir / name).read_bytes() for name in outcome.archived}
        now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
        self.jenkins.add_build(NIGHTLY_JOB, FakeBuild(number, result, now_ms, commit, artifacts))

    def empty_nightly_job(self) -> None:
        self.jenkins.jobs.setdefault(NIGHTLY_JOB, [])

    # -- one build ------------------------------------------------------------------------
    def run(self, name: str, *, pr: int | None = None, timer: bool = False,
            agent_list: list[dict] | None = None, abort_on: str | None = None,
            github_api: str | None = None, params: dict | None = None,
            minute_ms: int = 2000, jenkinsfile: Path | None = None,
            nightly_job: str = NIGHTLY_JOB) -> Outcome:
        """Run the Jenkinsfile as the nightly job (pr None) or as PR-<pr> of the multibranch
        job; every scenario gets fresh agents (workspaces) under base/name."""
        self.runs += 1
        home = self.base / name
        if home.exists():
            shutil.rmtree(home)
        home.mkdir(parents=True)
        job = f"perf-harness/PR-{pr}" if pr else NIGHTLY_JOB
        build_url = f"{self.jenkins.url}/job/{job.replace('/', '/job/')}/{self.runs}/"
        env = {"BUILD_URL": build_url, "JENKINS_URL": self.jenkins.url + "/",
               # Global properties (Manage Jenkins > System), as docs/jenkins.md sets them.
               "PERF_GITHUB_REPO": REPO, "PERF_GITHUB_API": github_api or self.github.url,
               "PERF_NIGHTLY_JOB": nightly_job, "PERF_AGENT_WAIT_MINUTES": "1",
               # The fast tests cover a few % of the code: a PR adding lines drops the total
               # by hundredths of a point, which a real project would not gate on.
               "PERF_COVERAGE_TOLERANCE": "0.5"}
        if pr:
            env.update({"BRANCH_NAME": f"PR-{pr}", "CHANGE_ID": str(pr), "CHANGE_TARGET": "main"})
            scm = {"origin": str(self.origin), "head": f"refs/pull/{pr}/head", "target": "main"}
        else:
            scm = {"origin": str(self.origin), "head": "refs/heads/main", "target": None}
        scenario = {
            "jenkinsfile": str(jenkinsfile or ROOT / "Jenkinsfile"), "root": str(home),
            "job": job, "env": env,
            "params": {"PERF_MODE": "auto", "PERF_EXPERIMENT": "smoke", **(params or {})},
            "causes": [TIMER] if timer else ["hudson.model.Cause$UserIdCause"],
            "agents": agent_list if agent_list is not None else agents(),
            "credentials": {
                "jenkins-api-token": {"username": JENKINS_USER, "password": JENKINS_TOKEN},
                "github-token": {"secret": GITHUB_TOKEN}},
            "secret_values": [JENKINS_TOKEN, GITHUB_TOKEN],
            "scm": scm,
            "command_env": {"PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
                            "HOME": str(home), "LANG": "C.UTF-8"},
            "abort_on": abort_on, "minute_ms": minute_ms,
        }
        (home / "scenario.json").write_text(json.dumps(scenario, indent=1))
        before = len(self.github.statuses)
        java = java_home()
        proc = subprocess.run(
            ["groovy", str(STUB), str(home / "scenario.json"), str(home / "result.json")],
            env={**os.environ, **({"JAVA_HOME": java} if java else {})},
            capture_output=True, text=True, timeout=900, check=False)
        if not (home / "result.json").exists():
            raise RuntimeError(f"the stub did not run: {proc.stderr[-3000:]}")
        data = json.loads((home / "result.json").read_text())
        return Outcome(
            result=data["result"],
            stages={s["path"]: s["result"] for s in data["stages"]},
            steps=data["steps"], archived=data["archived"], log=data["log"],
            archive_dir=home / "archive", statuses=self.github.statuses[before:],
            crash=data.get("crash"))


def main() -> int:
    """Run the scenarios (the test file) with pytest: `python ci/rehearse.py`."""
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(ROOT / "tests" / "test_rehearsal.py")],
                           env={**os.environ, "PERF_REHEARSAL": "1"}, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
