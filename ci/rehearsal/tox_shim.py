"""`tox` for the rehearsal: runs a tox env's commands from the checkout's own tox.ini, fast.

Creating real tox envs in every stage of every scenario would take most of an hour, so this
reads the env from the tox.ini of the directory it is called in (or `-c FILE`) and runs its
commands the way tox 4 would: in the tox.ini's directory, with only the variables tox passes
(its defaults, the env's `pass_env`, its `set_env`), `{posargs}`, `{env:NAME:DEFAULT}`, `{/}` and
`{tox_root}` substituted, stopping at the first failing command and exiting with its code. The
commands find `harness`, `coverage` and `python` in the rehearsal's virtualenv; PYTHONPATH puts
the checkout first, so a step runs the checkout's own harness (what `package = editable` gives).

Two envs are cut short, and the record says so: `py` runs a few test files instead of the whole
suite (the coverage data it writes are real; a checkout whose git tree was already tested gets
the data of that run, renamed for this platform), and `lint` writes an empty pylint.log.

Configuration: the JSON file named by $REHEARSAL_TOX_CONFIG is not passed to commands; the
shim is started as `python tox_shim.py CONFIG ARGS...` by the `tox` script ci/rehearse.py writes.
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

# What tox 4 passes to every env without being asked (tox_env/api.py, the common subset).
DEFAULT_PASS = ("HOME", "LANG", "LANGUAGE", "LC_ALL", "TERM", "TMPDIR", "PIP_*", "SYSTEMROOT",
                "PATHEXT", "COMSPEC", "TEMP", "TMP", "USERPROFILE")


def parse_args(argv: list[str]) -> tuple[Path | None, str, list[str]]:
    ini, env, posargs = None, None, []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            posargs = argv[i + 1:]
            break
        if word == "-c":
            ini, i = Path(argv[i + 1]), i + 1
        elif word == "-e":
            env, i = argv[i + 1], i + 1
        i += 1
    if env is None:
        raise SystemExit("tox shim: only `tox [-c INI] -e ENV [-- POSARGS]` is rehearsed")
    return ini, env, posargs


def read_env(ini: Path, name: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read(ini, encoding="utf-8")
    base = dict(parser["testenv"]) if parser.has_section("testenv") else {}
    section = "testenv" if name == "py" else f"testenv:{name}"
    if not parser.has_section(section):
        raise SystemExit(f"tox shim: {ini} has no [{section}] (tox: unknown environment)")
    settings = {**base, **dict(parser[section])}
    for key, value in settings.items():  # {[testenv]pass_env}
        settings[key] = value.replace("{[testenv]pass_env}", base.get("pass_env", ""))
    return settings


def substitute(text: str, root: Path, posargs: list[str], environ: dict[str, str]) -> str:
    def env_value(match: re.Match) -> str:
        return environ.get(match.group(1), match.group(2) or "")

    text = re.sub(r"\{env:([A-Za-z_][A-Za-z0-9_]*):?([^}]*)\}", env_value, text)
    text = text.replace("{/}", os.sep).replace("{tox_root}", str(root))
    text = text.replace("{env_tmp_dir}", str(root / ".tox-shim-tmp"))
    given = " ".join(shlex.quote(a) for a in posargs)

    def posarg(match: re.Match) -> str:
        return given if posargs else (match.group(1) or "")

    return re.sub(r"\{posargs:?([^}]*)\}", posarg, text)


def lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def build_environment(settings: dict[str, str], root: Path, config: dict) -> dict[str, str]:
    patterns = list(DEFAULT_PASS)
    for line in lines(settings.get("pass_env", "")):
        patterns += line.replace(",", " ").split()
    env = {k: v for k, v in os.environ.items() if any(fnmatch.fnmatchcase(k, p) for p in patterns)}
    env["PATH"] = config["venv_bin"] + os.pathsep + os.environ.get("PATH", "")
    env["PYTHONPATH"] = str(root)
    env["TOX_ENV_NAME"] = "rehearsal"
    for line in lines(settings.get("set_env", "")):
        key, _, value = line.partition("=")
        env[key.strip()] = substitute(value.strip(), root, [], env)
    return env


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    ini, name, posargs = parse_args(argv[1:])
    ini = (ini or Path.cwd() / "tox.ini").resolve()
    root = ini.parent
    settings = read_env(ini, name)
    env = build_environment(settings, root, config)
    record = {"env": name, "root": str(root), "posargs": posargs, "passed": sorted(env)}
    with open(config["record"], "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
    if name == "lint":
        (root / "pylint.log").write_text("", encoding="utf-8")
        print("tox shim: lint cut short (an empty pylint.log)")
        return 0
    if name == "py" and reuse_tests(root, env, posargs, Path(config["cache"])):
        return 0
    for command in lines(settings.get("commands", "")):
        words = shlex.split(substitute(command, root, posargs, env))
        if name == "py" and words[:4] == ["coverage", "run", "-m", "pytest"]:
            words[4:4] = ["-q", "-p", "no:cacheprovider", *config["fast_tests"]]
        print(f"{name}: commands> {' '.join(words)}", flush=True)
        code = subprocess.run(words, cwd=root, env=env, check=False).returncode
        if code != 0:
            print(f"  {name}: FAIL code {code}", flush=True)
            return code
    if name == "py":
        keep_tests(root, env, Path(config["cache"]))
    print(f"  {name}: OK", flush=True)
    return 0


def _tree(root: Path) -> str | None:
    proc = subprocess.run(["git", "rev-parse", "HEAD^{tree}"], cwd=root, capture_output=True,
                          text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _data_files(env: dict[str, str]) -> list[Path]:
    data = Path(env["COVERAGE_FILE"])
    return sorted(data.parent.glob(data.name + "*"))


def keep_tests(root: Path, env: dict[str, str], cache: Path) -> None:
    """Keep this run's coverage data for other cells testing the same tree."""
    tree = _tree(root)
    if tree is None or "COVERAGE_FILE" not in env:
        return
    target = cache / tree
    target.mkdir(parents=True, exist_ok=True)
    prefix = Path(env["COVERAGE_FILE"]).name
    for path in _data_files(env):
        shutil.copy(path, target / ("DATA" + path.name[len(prefix):]))


def reuse_tests(root: Path, env: dict[str, str], posargs: list[str], cache: Path) -> bool:
    """Copy the coverage data of an earlier run of the same tree; True when there was one."""
    tree = _tree(root)
    stored = cache / tree if tree else None
    if stored is None or not stored.is_dir() or "COVERAGE_FILE" not in env:
        return False
    data = Path(env["COVERAGE_FILE"])
    for path in stored.iterdir():
        shutil.copy(path, data.parent / (data.name + path.name[len("DATA"):]))
    for arg in posargs:
        if arg.startswith("--junitxml="):
            (root / arg.split("=", 1)[1]).write_text(
                '<testsuites><testsuite name="rehearsal" tests="0"/></testsuites>')
    print(f"py: tree {tree[:12]} was tested in this rehearsal already: its coverage data reused")
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
