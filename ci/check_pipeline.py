"""Offline check of the Jenkinsfile: Groovy parse, the three phases, tox envs and harness flags.

No Jenkins can run here, so this checks what can be checked without one:
* the Jenkinsfile parses with Groovy 2.4 (ci/parse_jenkinsfile.groovy, the parser Jenkins uses);
* it has the three phases in order, a matrix over the platforms in platforms/*.toml, agent labels
  that match those profiles, and the steps that record results (junit, pylint, coverage, HTML);
* every tox env it calls exists in tox.ini, and every `harness` command those envs run (with the
  flags they and the Jenkinsfile pass) exists in harness/cli.py's parser.

Usage: python ci/check_pipeline.py [--root DIR] [--jenkinsfile F] [--tox-ini F] [--no-groovy]
Exit 0 when everything holds, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("Phase 1", "Phase 2", "Phase 3")
REQUIRED_STEPS = {
    "isUnix()": "choose sh or bat per agent",
    "junit(": "record test results",
    "recordIssues(": "record pylint findings (Warnings NG)",
    "recordCoverage(": "publish the Cobertura XML (Coverage plugin)",
    "publishHTML(": "publish the performance report",
    "archiveArtifacts(": "archive results.json / verdict.json / coverage.json",
    "stash(": "hand each cell's coverage data to phase 2",
    "unstash(": "collect the cells' coverage data in phase 2",
    "cron(": "start the nightly baseline build",
}
_TOX_CALL = re.compile(r"\btox(?:Status|Env)\(\s*'([\w.-]+)'\s*(?:,\s*\"([^\"]*)\")?")
_TOX_LITERAL = re.compile(r"\btox -e ([\w.-]+)(?: -- ([^\n;&|']*))?")
_STAGE = re.compile(r"\bstage\(\s*'([^']+)'\s*\)")


def java_home() -> str | None:
    """JAVA_HOME if it is valid, else the JDK behind `java` on PATH (Debian's groovy needs it)."""
    current = os.environ.get("JAVA_HOME")
    if current and (Path(current) / "bin" / "java").exists():
        return current
    java = shutil.which("java")
    return str(Path(java).resolve().parent.parent) if java else None


def groovy_problems(jenkinsfile: Path) -> list[str]:
    """Parse with Groovy up to the CONVERSION phase; the parser's message is the problem."""
    groovy = shutil.which("groovy")
    if groovy is None:
        return ["groovy is not installed: apt-get install groovy (Groovy 2.4, as in Jenkins)"]
    env = dict(os.environ)
    home = java_home()
    if home:
        env["JAVA_HOME"] = home
    proc = subprocess.run(
        [groovy, str(ROOT / "ci" / "parse_jenkinsfile.groovy"), str(jenkinsfile)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    if proc.returncode == 0:
        return []
    return [f"groovy: {line}" for line in (proc.stderr or proc.stdout).strip().splitlines()]


def read_platforms(root: Path) -> dict:
    """The platform registry, through the harness' own reader."""
    sys.path.insert(0, str(root))
    from harness.platforms import load_platforms

    return load_platforms(root / "platforms")


def phase_problems(text: str) -> list[str]:
    stages = _STAGE.findall(text)
    phases = [next((s for s in stages if s.startswith(p)), None) for p in PHASES]
    problems = [f"no stage named '{p}: ...'"
                for p, s in zip(PHASES, phases, strict=True) if s is None]
    found = [s for s in phases if s]
    if not problems and [stages.index(s) for s in found] != sorted(stages.index(s) for s in found):
        problems.append(f"phases are out of order: {found}")
    return problems


def _quoted(values: str) -> list[str]:
    return re.findall(r"'([^']*)'", values)


def matrix_problems(text: str, platforms: dict) -> list[str]:
    problems = []
    axis = re.search(r"axis\s*\{\s*name\s+'PLATFORM'\s+values\s+([^\n]+)", text)
    names = sorted(platforms)
    if "matrix {" not in text or axis is None:
        return ["phase 1 has no matrix with a PLATFORM axis"]
    if sorted(_quoted(axis.group(1))) != names:
        problems.append(f"matrix axis PLATFORM is {_quoted(axis.group(1))}, platforms/ has {names}")
    listed = re.search(r"PLATFORMS\s*=\s*\[([^\]]*)\]", text)
    if listed is None or sorted(_quoted(listed.group(1))) != names:
        problems.append(f"PLATFORMS (used to unstash coverage) must list {names}")
    if len(re.findall(r"axis\s*\{\s*name\s+'PLATFORM'\s+values\s+([^\n]+)", text)) < 2:
        problems.append("phase 3 must be a matrix over the PLATFORM axis too (one perf agent "
                        "per platform)")
    if 'label "${PLATFORM}"' not in text:
        problems.append('matrix cells must run on agent { label "${PLATFORM}" }')
    for name, profile in platforms.items():
        if profile.label != name:
            problems.append(f"{profile.source}: label {profile.label!r} differs from the matrix "
                            f"cell label {name!r}")
        if profile.perf_label != f"perf && {name}":
            problems.append(f"{profile.source}: perf_label {profile.perf_label!r} differs from "
                            f"the phase 3 label 'perf && {name}'")
    if 'def label = "perf && ${platform}"' not in text:
        problems.append("phase 3 must run on the perf agent label of its platform "
                        "('perf && <platform>')")
    return problems


def _enclosing_blocks(text: str, index: int) -> list[str]:
    """The words before each `{` that encloses `index`, innermost first."""
    words, depth = [], 0
    for pos in range(index - 1, -1, -1):
        char = text[pos]
        if char == "}":
            depth += 1
        elif char == "{":
            if depth == 0:
                head = re.search(r"([\w.]+)\s*(?:\([^()]*\))?\s*$", text[max(0, pos - 200):pos])
                words.append(head.group(1) if head else "")
            else:
                depth -= 1
    return words


def trust_problems(text: str) -> list[str]:
    """Tokens are bound only around code from the target branch: every withCredentials block
    sits inside `trusted { ... }`, and no step of the PR's code runs inside one."""
    problems = []
    for match in re.finditer(r"\bwithCredentials\(", text):
        if "trusted" not in _enclosing_blocks(text, match.start()):
            line = text.count("\n", 0, match.start()) + 1
            problems.append(f"line {line}: withCredentials outside `trusted {{ }}`: a token "
                            f"would be bound while the pull request's own code runs")
    return problems


def step_problems(text: str) -> list[str]:
    return [f"no {step} step: needed to {why}" for step, why in REQUIRED_STEPS.items()
            if step not in text]


def strip_comments(text: str) -> str:
    """The Jenkinsfile without /* */ blocks and // comments (which mention tox envs as prose)."""
    # Only blocks that open a line: "perf/**/results.json" inside a string is not a comment.
    text = re.sub(r"^[ \t]*/\*.*?\*/", "", text, flags=re.S | re.M)
    return re.sub(r"(^|\s)//[^\n]*", r"\1", text)


def tox_calls(text: str) -> list[tuple[str, str]]:
    """(env, posargs) for every tox call in the Jenkinsfile."""
    calls = [(m.group(1), m.group(2) or "") for m in _TOX_CALL.finditer(text)]
    calls += [(m.group(1), m.group(2) or "") for m in _TOX_LITERAL.finditer(text)]
    return calls


def read_tox(path: Path) -> dict[str, list[str]]:
    """env name -> command lines ("py" is the base [testenv])."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read(path, encoding="utf-8")
    envs = {}
    for section in parser.sections():
        if section == "testenv":
            name = "py"
        elif section.startswith("testenv:"):
            name = section.split(":", 1)[1]
        else:
            continue
        commands = parser.get(section, "commands", fallback="")
        envs[name] = [line.strip() for line in commands.splitlines() if line.strip()]
    return envs


def _subcommand(parser: argparse.ArgumentParser, words: list[str]):
    """Walk `words` down the sub-parsers; return (leaf parser, words used) or (None, words)."""
    used = []
    for word in words:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            break
        if word not in subs[0].choices:
            return None, used + [word]
        parser = subs[0].choices[word]
        used.append(word)
    if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
        return None, used
    return parser, used


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings}


def harness_problems(env: str, command: str, posargs: str, cli: argparse.ArgumentParser) -> list:
    words = shlex.split(command.replace("{posargs}", ""), posix=True)[1:]
    head = [w for w in words if not w.startswith("-") and not w.startswith("{")]
    parser, used = _subcommand(cli, head)
    if parser is None:
        return [f"tox env {env}: `harness {' '.join(used)}` is not a harness command"]
    flags = [w.split("=", 1)[0] for w in words + shlex.split(posargs) if w.startswith("--")]
    known = _flags(parser)
    return [f"tox env {env}: `harness {' '.join(used)}` has no flag {flag}"
            for flag in flags if flag not in known]


def tox_problems(text: str, tox_ini: Path, cli: argparse.ArgumentParser) -> list[str]:
    envs = read_tox(tox_ini)
    problems = []
    for env, posargs in tox_calls(text):
        if env not in envs:
            problems.append(f"the Jenkinsfile calls `tox -e {env}`, which {tox_ini} does not "
                            f"define")
            continue
        for command in envs[env]:
            if command.startswith("harness "):
                problems += harness_problems(env, command, posargs, cli)
    return sorted(set(problems))


def multijob_problems(jobs_dir: Path, tox_ini: Path, cli: argparse.ArgumentParser) -> list[str]:
    """The job definitions: a multijob with the three phases, calling tox envs that exist."""
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(jobs_dir.glob("*.yaml"))}
    if not texts:
        return [f"{jobs_dir}: no job definitions (*.yaml)"]
    problems = [f"{jobs_dir}/{name}: {problem}" for name, text in texts.items()
                for problem in tox_problems(text, tox_ini, cli)]
    multijob = next((t for t in texts.values() if "project-type: multijob" in t), None)
    if multijob is None:
        return problems + [f"{jobs_dir}: no `project-type: multijob` pull-request job"]
    names = re.findall(r"- multijob:\s*\n\s*name:\s*'([^']+)'", multijob)
    if [n.split(":")[0] for n in names][:len(PHASES)] != list(PHASES):
        problems.append(f"{jobs_dir}: the multijob's phases are {names}, expected {PHASES} "
                        f"first")
    return problems


def check(root: Path, jenkinsfile: Path, tox_ini: Path, groovy: bool = True) -> list[str]:
    """Every problem found, one line each; empty when the pipeline holds together."""
    text = strip_comments(jenkinsfile.read_text(encoding="utf-8"))
    platforms = read_platforms(root)
    sys.path.insert(0, str(root))
    from harness.cli import build_parser

    problems = groovy_problems(jenkinsfile) if groovy else []
    problems += phase_problems(text)
    problems += matrix_problems(text, platforms)
    problems += step_problems(text)
    problems += trust_problems(text)
    problems += tox_problems(text, tox_ini, build_parser())
    problems += multijob_problems(root / "ci" / "jobs", tox_ini, build_parser())
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--jenkinsfile", type=Path, default=None)
    parser.add_argument("--tox-ini", type=Path, default=None)
    parser.add_argument("--no-groovy", action="store_true", help="skip the Groovy parse")
    args = parser.parse_args(argv)
    jenkinsfile = args.jenkinsfile or args.root / "Jenkinsfile"
    groovy = not args.no_groovy
    if groovy and shutil.which("groovy") is None and \
            os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        print("groovy is not installed: the Jenkinsfile parse is skipped (sudo apt-get install "
              "groovy; with CI=true it is required)")
        groovy = False
    problems = check(args.root, jenkinsfile, args.tox_ini or args.root / "tox.ini",
                     groovy=groovy)
    for problem in problems:
        print(f"{jenkinsfile}: {problem}", file=sys.stderr)
    if not problems:
        print(f"{jenkinsfile}: pipeline checks passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
