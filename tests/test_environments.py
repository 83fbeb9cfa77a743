"""Per-side environments: each side of `harness perf` runs with its own dependencies and Python."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.environments import EnvironmentSpec, declarations, find_interpreter, side_environment
from harness.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

APP = """\
import http.server, os, sys
import six

print("six", six.__version__, "from", os.path.dirname(six.__file__), flush=True)
print("app from", os.path.abspath(__file__), flush=True)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = six.__version__.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""

EXPERIMENT = """\
name = "pinned"

[subject]
command = ["{python}", "app.py", "{port}"]
setup = [["{python}", "-c", "import sys; open(sys.argv[1] + '/x', 'w').close()", "{state_dir}"]]
ready = { http = "/health", timeout = "30s" }

[workload]
rate = "50/s"
requests = 20
warmup = "0s"

[[workload.endpoints]]
path = "/version"

[rounds]
perf_min = 1
"""


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def test_a_version_that_is_not_installed_is_named_with_the_fix():
    with pytest.raises(ConfigError, match=r'python = "2\.99".*Install it, or give'):
        find_interpreter("2.99")
    with pytest.raises(ConfigError, match="no such interpreter"):
        find_interpreter("/nowhere/python")


def test_a_version_finds_an_interpreter_of_that_version():
    wanted = f"{sys.version_info[0]}.{sys.version_info[1]}"
    found = find_interpreter(wanted)
    out = subprocess.run([found, "-c", "import sys; print(sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(tuple(sys.version_info[:2]))


def test_declarations_are_named_files_else_requirements_else_pyproject(tmp_path):
    assert declarations(tmp_path, EnvironmentSpec()) == []
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["six"]\n')
    assert declarations(tmp_path, EnvironmentSpec()) == [tmp_path / "pyproject.toml"]
    (tmp_path / "requirements.txt").write_text("six\n")
    assert declarations(tmp_path, EnvironmentSpec()) == [tmp_path / "requirements.txt"]
    (tmp_path / "deps.txt").write_text("six\n")
    named = EnvironmentSpec(requirements=("deps.txt",))
    assert declarations(tmp_path, named) == [tmp_path / "deps.txt"]
    with pytest.raises(ConfigError, match="missing.txt not in"):
        declarations(tmp_path, EnvironmentSpec(requirements=("missing.txt",)))
    # a baseline from before the change that added the named file: the usual files count
    older = declarations(tmp_path, EnvironmentSpec(requirements=("missing.txt",)), missing_ok=True)
    assert older == [tmp_path / "requirements.txt"]


@pytest.mark.integration
def test_an_environment_is_rebuilt_only_when_what_it_was_built_from_changes(tmp_path):
    tree, cache = tmp_path / "tree", tmp_path / "cache"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "__init__.py").write_text("NAME = 'mine'\n")
    first = side_environment(cache, tree, EnvironmentSpec(), label="candidate")
    out = subprocess.run([first.python, "-c", "import pkg, sys; print(pkg.NAME, sys.prefix)"],
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "mine" and out[1] != sys.prefix  # its own tree, its own prefix
    again = side_environment(cache, tree, EnvironmentSpec(), label="candidate")
    assert again.key == first.key
    assert "harness" not in subprocess.run(  # the harness' own packages are not visible
        [first.python, "-c", "import importlib.util as u; print(u.find_spec('psutil'))"],
        capture_output=True, text=True, check=True).stdout.replace("None", "")
    (tree / "requirements.txt").write_text("# nothing yet\n")
    changed = side_environment(cache, tree, EnvironmentSpec(), label="candidate")
    assert changed.key != first.key and changed.built_from == ("requirements.txt",)


@pytest.fixture(scope="module")
def pinned(tmp_path_factory) -> Path:
    """A small application whose second commit bumps its pinned `six`."""
    root = tmp_path_factory.mktemp("pinned") / "app"
    root.mkdir()
    (root / "app.py").write_text(APP)
    (root / "perf.toml").write_text(EXPERIMENT)
    (root / "requirements.txt").write_text("six==1.15.0\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "six 1.15")
    (root / "requirements.txt").write_text("six==1.16.0\n")
    _git(root, "commit", "-q", "-am", "six 1.16")
    return root


def test_the_output_folder_is_not_an_uncommitted_change(tmp_path):
    from harness.worktree import has_uncommitted_changes

    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.txt").write_text("a\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "a")
    (root / "perf-out").mkdir()
    (root / "perf-out" / "verdict.json").write_text("{}")
    assert has_uncommitted_changes(root)
    assert not has_uncommitted_changes(root, (root / "perf-out", tmp_path / "elsewhere"))
    (root / "a.txt").write_text("b\n")
    assert has_uncommitted_changes(root, (root / "perf-out",))


def _perf(root: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    relative = os.path.relpath(out, root)  # each side runs in its own tree: it must still work
    return subprocess.run(
        [sys.executable, "-m", "harness", "perf", "perf.toml", "--out", relative, "--seed", "1",
         "--rounds", "1", "--budget", "1s", *args],
        cwd=root, capture_output=True, text=True, timeout=600,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )


def _code(out: Path, side: str) -> dict:
    return json.loads((out / side / "results.json").read_text())["session"]["code"]


def _stdout(out: Path, side: str) -> str:
    return "".join(p.read_text() for p in (out / "work").glob(f"*-{side}/**/stdout.log"))


@pytest.mark.slow
@pytest.mark.integration
def test_each_side_runs_with_the_dependencies_its_own_commit_pins(pinned, tmp_path):
    proc = _perf(pinned, tmp_path / "out", "--baseline-ref", "HEAD~1")
    assert (tmp_path / "out" / "verdict.json").exists(), proc.stdout + proc.stderr
    baseline, candidate = _code(tmp_path / "out", "baseline"), _code(tmp_path / "out", "candidate")
    assert baseline["environment"]["packages"]["six"] == "1.15.0"
    assert candidate["environment"]["packages"]["six"] == "1.16.0"
    assert baseline["environment"]["built_from"] == ["requirements.txt"]
    assert baseline["commit"] == _git(pinned, "rev-parse", "HEAD~1")
    assert candidate["uncommitted_changes"] is False
    assert "six 1.15.0" in _stdout(tmp_path / "out", "baseline")  # what really ran
    assert "six 1.16.0" in _stdout(tmp_path / "out", "candidate")
    report = (tmp_path / "out" / "report.html").read_text()
    assert "package six" in report and "1.15.0" in report and "1.16.0" in report
    assert "/.perf-cache/" in (pinned / ".git" / "info" / "exclude").read_text()
    assert _git(pinned, "status", "--porcelain") == ""  # the cache is never staged


@pytest.mark.slow
@pytest.mark.integration
def test_uncommitted_changes_are_measured_and_said(pinned, tmp_path):
    (pinned / "requirements.txt").write_text("six==1.15.0\n")
    try:
        proc = _perf(pinned, tmp_path / "out", "--baseline-ref", "HEAD")
        assert (tmp_path / "out" / "verdict.json").exists(), proc.stdout + proc.stderr
        assert "with uncommitted changes" in proc.stdout
        candidate = _code(tmp_path / "out", "candidate")
        assert candidate["uncommitted_changes"] is True
        assert candidate["environment"]["packages"]["six"] == "1.15.0"
        assert _code(tmp_path / "out", "baseline")["environment"]["packages"]["six"] == "1.16.0"
    finally:
        _git(pinned, "checkout", "--", "requirements.txt")


@pytest.mark.integration
def test_outside_git_the_message_names_what_is_missing(tmp_path):
    (tmp_path / "perf.toml").write_text(EXPERIMENT)
    proc = _perf(tmp_path, tmp_path / "out")
    assert proc.returncode == 1
    assert "not in a git checkout" in proc.stderr and "--baseline-dir" in proc.stderr
    assert "HEAD" not in proc.stderr  # no ref the user never gave


@pytest.mark.slow
@pytest.mark.integration
def test_outside_git_directories_and_variables_are_compared(tmp_path):
    app = (APP.replace("import six\n", "").replace("six.__version__", "sys.argv[2]")
           .replace("os.path.dirname(six.__file__)", "'nowhere'"))
    for folder, version in (("new", "2"), ("old", "1")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "app.py").write_text(app)
        (tmp_path / folder / "perf.toml").write_text(
            EXPERIMENT.replace('"app.py", "{port}"]', '"app.py", "{port}", "{v}"]')
            + f'\n[variables]\nv = "{version}"\n')
    new = tmp_path / "new"
    proc = _perf(new, tmp_path / "dirs", "--baseline-dir", str(tmp_path / "old"))
    assert (tmp_path / "dirs" / "verdict.json").exists(), proc.stdout + proc.stderr
    assert _code(tmp_path / "dirs", "baseline")["root"] == str(tmp_path / "old")
    assert "app from " + str(tmp_path / "old") in _stdout(tmp_path / "dirs", "baseline")
    proc = _perf(new, tmp_path / "vars", "--baseline-set", "v=1", "--set", "v=3")
    assert (tmp_path / "vars" / "verdict.json").exists(), proc.stdout + proc.stderr
    assert _code(tmp_path / "vars", "baseline")["commit"] is None  # no git anywhere


@pytest.mark.integration
def test_install_commands_run_with_the_environments_interpreter_and_count_in_its_key(tmp_path):
    tree, cache = tmp_path / "tree", tmp_path / "cache"
    tree.mkdir()
    write = "import pathlib, sys; pathlib.Path(sys.prefix, 'installed').write_text(sys.prefix)"
    spec = EnvironmentSpec(install=(("{python}", "-c", write),))
    env = side_environment(cache, tree, spec, label="baseline")
    prefix = Path(env.python).parents[1]
    assert (prefix / "installed").read_text() == str(prefix)
    assert env.built_from == (f"{{python}} -c {write}",)
    assert side_environment(cache, tree, EnvironmentSpec(), label="baseline").key != env.key
