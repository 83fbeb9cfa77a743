"""The `harness` command: a thin layer that parses flags and calls one library function each."""

from __future__ import annotations

import argparse
import sys
import sysconfig
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import harness
from harness.errors import ExitCode, HarnessError
from harness.files import check_output_dir
from harness.secrets import redact

CRASH_LOG = "harness-crash.log"  # where an unexpected error's traceback is written


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (e.g. 5)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} rounds measure nothing (give 1 or more)")
    return value

_HISTORY_DB = Path(".perf-cache") / "history.sqlite"


def _parse_sets(values: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HarnessError(f"--set {item!r}: expected KEY=VALUE, e.g. --set db=blocking")
        out[key.strip()] = value
    return out


def _cmd_validate(args: argparse.Namespace) -> int:
    from harness.experiment import validate_experiment

    problems = validate_experiment(Path(args.experiment), overrides=_parse_sets(args.set))
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return ExitCode.ERROR
    from harness.experiment import load_experiment
    from harness.probes import injection_warning

    experiment = load_experiment(Path(args.experiment), overrides=_parse_sets(args.set))
    warning = injection_warning(experiment.probes, experiment.subject.command, sys.executable,
                                experiment.subject.python, dict(experiment.variables))
    if warning:
        print(f"warning: {args.experiment}: {warning}", file=sys.stderr)
    print(f"{args.experiment}: valid")
    return ExitCode.OK


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.experiment import load_experiment
    from harness.runner import run_experiment

    check_output_dir(Path(args.out))
    experiment = load_experiment(Path(args.experiment), overrides=_parse_sets(args.set))
    results = run_experiment(
        experiment,
        out_dir=Path(args.out),
        label=args.label,
        rounds=args.rounds,
        progress=not args.quiet,
    )
    for warning in results.warnings:  # loudly: e.g. a subject that ran unprobed
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {Path(args.out) / 'results.json'} ({len(results.rounds)} rounds)")
    for line in _stop_notes(results.rounds):
        print(f"harness: warning: {line}", file=sys.stderr)
    if results.valid:
        return ExitCode.OK
    invalid = [r for r in results.rounds if not r.valid]
    rounds = sorted({r.index for r in invalid})
    print(f"harness: error: {len(rounds)} of {len({r.index for r in results.rounds})} rounds are "
          "invalid, so these results cannot be compared:", file=sys.stderr)
    seen: set[str] = set()
    for r in invalid:
        note = f"  round {r.index} (instance {r.instance}): {r.invalid_reason}"
        if r.invalid_reason not in seen:
            print(note, file=sys.stderr)
            seen.add(r.invalid_reason or "")
    print(f"  (details in {Path(args.out) / 'results.json'} and the logs under "
          f"{Path(args.out) / 'work'})", file=sys.stderr)
    return ExitCode.ERROR


def _stop_notes(rounds: Sequence[Any]) -> list[str]:
    """Stops that needed SIGKILL, and failed requests by class, one line per round."""
    notes = []
    for r in rounds:
        if r.stop and r.stop.get("warning"):
            notes.append(f"round {r.index} instance {r.instance}: {r.stop['warning']}")
        if r.errors:
            kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(r.errors.items()))
            notes.append(f"round {r.index} instance {r.instance}: requests failed or retried: "
                         f"{kinds}")
    return notes


def _cmd_compare(args: argparse.Namespace) -> int:
    from harness.compare import compare, exit_code
    from harness.outputs import session_output
    from harness.report import terminal_table, write_reports
    from harness.results import load_results

    out = Path(args.out)
    check_output_dir(out)
    if Path(args.baseline).resolve() == Path(args.candidate).resolve():
        print(f"harness: warning: {args.baseline} is compared with itself: every difference is "
              "zero; give the baseline's and the candidate's results.json", file=sys.stderr)
    with session_output(out) as staging:
        comparison = compare(
            load_results(Path(args.baseline)),
            load_results(Path(args.candidate)),
            allow_mismatch=args.allow_mismatch,
        )
        write_reports(comparison, out_dir=staging, report_url=args.report_url)
    print(terminal_table(comparison))
    if args.perf_plugin_csv:
        from harness.perfplugin import write_perf_plugin_csvs

        for path in write_perf_plugin_csvs(comparison.baseline, comparison.candidate,
                                           Path(args.out) / "perf-plugin"):
            print(f"wrote {path} (Jenkins Performance plugin)")
    return exit_code(comparison, fail_on_inconclusive=args.fail_on_inconclusive)


def _cmd_import_jtl(args: argparse.Namespace) -> int:
    from harness.jtl import import_jtl

    results = import_jtl(
        [Path(f) for f in args.files],
        out_dir=Path(args.out),
        label=args.label,
        name=args.name,
        round_column=args.round_column,
        columns=args.columns.split(",") if args.columns else None,
    )
    count = sum(len(r.requests) for r in results.rounds)
    print(f"wrote {Path(args.out) / 'results.json'} ({len(results.rounds)} rounds, "
          f"{count} samples)")
    return ExitCode.OK


def _cmd_perf(args: argparse.Namespace) -> int:
    from harness.compare import exit_code
    from harness.outputs import session_output
    from harness.perf import run_perf
    from harness.report import terminal_table

    out = Path(args.out)
    check_output_dir(out)
    with session_output(out) as staging:
        outcome = run_perf(
            experiment_path=Path(args.experiment) if args.experiment else None,
            out_dir=staging,
            baseline_ref=args.baseline_ref,
            baseline_dir=Path(args.baseline_dir) if args.baseline_dir else None,
            baseline_file=Path(args.baseline) if args.baseline else None,
            baseline_jenkins=args.baseline_jenkins,
            overrides=_parse_sets(args.set),
            baseline_overrides=_parse_sets(args.baseline_set),
            budget=args.budget,
            rounds=args.rounds,
            seed=args.seed,
            report_url=args.report_url,
        )
    # run_perf works in absolute paths (each side runs in its own tree); --out may be relative
    report = (out / outcome.report.resolve().relative_to(staging.resolve())).resolve()
    print(terminal_table(outcome.comparison))
    print(f"{outcome.rounds_per_side} rounds per side in {outcome.duration:.0f} s "
          f"({outcome.stop_reason})")
    print(f"report: {report}")
    print(f"open it: python -m webbrowser {report.as_uri()}")
    return exit_code(outcome.comparison, fail_on_inconclusive=args.fail_on_inconclusive)


def _cmd_baseline_fetch(args: argparse.Namespace) -> int:
    from harness.baseline import fetch_baseline

    return fetch_baseline(
        job=args.job,
        out_dir=Path(args.out),
        experiment=args.experiment,
        platform=args.platform,
        jenkins_url=args.jenkins_url,
        max_age_days=args.max_age_days,
        candidate_commit=args.candidate_commit,
        strict=args.strict,
        artifact=args.artifact,
        repo=Path(args.repo) if args.repo else None,
        allow_missing_job=args.allow_missing_job,
    )


def _cmd_coverage_gate(args: argparse.Namespace) -> int:
    from harness.coverage_gate import coverage_gate

    return coverage_gate(
        current=Path(args.current),
        baseline=Path(args.baseline) if args.baseline else None,
        tolerance=args.tolerance,
        changed_files=args.changed_files,
        out=Path(args.out) if args.out else None,
        allow_no_baseline=args.allow_no_baseline,
    )


def _cmd_publish_github(args: argparse.Namespace) -> int:
    from harness.github import publish

    return publish(
        repo=args.repo,
        sha=args.sha,
        pr_number=args.pr,
        state=args.state,
        verdict_dir=Path(args.verdict_dir) if args.verdict_dir else None,
        report_url=args.report_url,
        base_url=args.base_url,
        context=args.context,
        description=args.description,
    )


def _cmd_history_sync(args: argparse.Namespace) -> int:
    from harness.history import sync
    from harness.nightly import run_nightly

    from_dir = Path(args.from_dir) if args.from_dir else None
    if args.post:
        run_nightly(db=Path(args.db), from_dir=from_dir, jenkins_job=args.jenkins,
                    jenkins_url=args.jenkins_url, limit=args.limit, artifact=args.artifact,
                    github_repo=args.github_repo,
                    github_base_url=args.github_base_url, report_url=args.report_url)
    else:
        sync(db=Path(args.db), from_dir=from_dir, jenkins_job=args.jenkins,
             jenkins_url=args.jenkins_url, limit=args.limit, artifact=args.artifact)
    return ExitCode.OK


def _cmd_history_show(args: argparse.Namespace) -> int:
    from harness.trends import show, terminal_text

    analyses, written = show(db=Path(args.db), experiment=args.experiment,
                             platform=args.platform, metric=args.metric,
                             all_metrics=args.all, last=args.last,
                             out=Path(args.out) if args.out else None,
                             candidate=Path(args.candidate) if args.candidate else None)
    print(terminal_text(analyses), end="")
    for path in written:
        print(f"wrote {path}")
    return ExitCode.OK


def _cmd_bisect(args: argparse.Namespace) -> int:
    from harness.bisect import run_bisect

    outcome = run_bisect(good=args.good, bad=args.bad,
                         experiment_path=Path(args.experiment) if args.experiment else None,
                         out_dir=Path(args.out), budget=args.budget, rounds=args.rounds,
                         seed=args.seed)
    print(outcome.headline)
    print(f"report: {Path(args.out) / 'bisect.md'}")
    return outcome.exit_code


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad flags; 2 means "regression" here, so bad flags exit 1."""

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(int(ExitCode.ERROR), f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="harness",
        description="Performance-regression testing: run experiments, compare, gate builds. "
        "Exit codes: 0 OK, 1 broken input or harness, 2 regression found.",
    )
    parser.add_argument("--version", action="version", version=f"harness {harness.__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an unexpected error (anywhere on the line)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check an experiment definition")
    p.add_argument("experiment")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("run", help="run an experiment and write DIR/results.json")
    p.add_argument("experiment")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--label", default="candidate")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--rounds", type=_positive, default=None,
                   help="rounds (default: the experiment's)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("compare", help="compare two results.json and write the reports")
    p.add_argument("baseline")
    p.add_argument("candidate")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="compare even when the environment fingerprints differ")
    p.add_argument("--fail-on-inconclusive", action="store_true",
                   help="exit 2 when a gated metric is inconclusive (default: pass with a warning)")
    p.add_argument("--report-url", default=None, help="link to the published report")
    p.add_argument("--perf-plugin-csv", action="store_true",
                   help="also write DIR/perf-plugin/{baseline,candidate}.csv, JMeter CSV results "
                   "for the Jenkins Performance plugin's perfReport step")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("import", help="turn results of other tools into results.json")
    isub = p.add_subparsers(dest="import_command", required=True, metavar="FORMAT")
    j = isub.add_parser("jtl", help="JMeter JTL files (CSV with or without header, or XML)")
    j.add_argument("files", nargs="+", metavar="FILE")
    j.add_argument("--out", required=True, metavar="DIR")
    j.add_argument("--label", default="imported", help="side label (e.g. baseline)")
    j.add_argument("--name", default="jmeter-import",
                   help="experiment name; give both sides of a comparison the same name")
    j.add_argument("--round-column", default=None, metavar="COLUMN",
                   help="one round per value of this column (default: one round per file)")
    j.add_argument("--columns", default=None, metavar="A,B,...",
                   help="column names of a CSV without a header line")
    j.set_defaults(func=_cmd_import_jtl)

    p = sub.add_parser("perf", help="baseline and candidate interleaved on this machine")
    p.add_argument("experiment", nargs="?", default=None)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--baseline-ref", default=None, metavar="REF")
    src.add_argument("--baseline-dir", default=None, metavar="DIR",
                     help="another copy of the code as the baseline (no git needed)")
    src.add_argument("--baseline", default=None, metavar="FILE")
    src.add_argument("--baseline-jenkins", default=None, metavar="JOB")
    p.add_argument("--out", default="perf-out", metavar="DIR")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--baseline-set", action="append", default=[], metavar="KEY=VALUE",
                   help="variables for the baseline side only (e.g. db=blocking)")
    p.add_argument("--budget", default=None,
                   help="wall time of the whole session, instruction tier included; the looks "
                   "are planned from it (default: the experiment's perf_budget, 5m)")
    p.add_argument("--rounds", type=_positive, default=None,
                   help="rounds per side to start with")
    p.add_argument("--seed", type=int, default=None, help="seed of the interleaving order")
    p.add_argument("--fail-on-inconclusive", action="store_true")
    p.add_argument("--report-url", default=None, help="link to the published report")
    p.set_defaults(func=_cmd_perf)

    p = sub.add_parser("baseline", help="baseline artifacts")
    bsub = p.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")
    f = bsub.add_parser("fetch", help="download the newest good nightly results.json from Jenkins")
    f.add_argument("--job", required=True)
    f.add_argument("--out", required=True, metavar="DIR")
    f.add_argument("--experiment", required=True)
    f.add_argument("--platform", default=None)
    f.add_argument("--jenkins-url", default=None, help="default: $JENKINS_URL")
    f.add_argument("--max-age-days", type=float, default=7.0)
    f.add_argument("--candidate-commit", default=None)
    f.add_argument("--strict", action="store_true", help="exit 1 when the baseline is refused")
    f.add_argument("--repo", default=None, metavar="DIR",
                   help="the candidate's git checkout, for the ancestry check (default: .)")
    f.add_argument("--allow-missing-job", action="store_true",
                   help="a job Jenkins answers 404 for is 'no baseline yet', not an error")
    f.add_argument("--artifact", default=None, metavar="PATH",
                   help="artifact path, {platform}/{experiment} filled in "
                        "(default: perf/{platform}/{experiment}/results.json)")
    f.set_defaults(func=_cmd_baseline_fetch)

    p = sub.add_parser("coverage", help="coverage gate")
    csub = p.add_subparsers(dest="coverage_command", required=True, metavar="ACTION")
    g = csub.add_parser("gate", help="compare combined coverage with the baseline's total")
    g.add_argument("--current", required=True, help="coverage.json of this build")
    g.add_argument("--baseline", default=None, help="coverage.json of main")
    g.add_argument("--tolerance", type=float, default=0.0, help="percentage points allowed to drop")
    g.add_argument("--changed-files", nargs="*", default=None)
    g.add_argument("--out", default=None, help="write the gate's result as JSON here")
    g.add_argument("--allow-no-baseline", action="store_true",
                   help="pass when the baseline file does not exist (none archived yet); "
                        "without it a missing baseline is an error")
    g.set_defaults(func=_cmd_coverage_gate)

    p = sub.add_parser("publish", help="feedback to code hosts")
    psub = p.add_subparsers(dest="publish_command", required=True, metavar="TARGET")
    h = psub.add_parser("github", help="commit status and one PR comment")
    h.add_argument("--repo", required=True, help="owner/name")
    h.add_argument("--sha", required=True)
    h.add_argument("--pr", type=int, default=None)
    h.add_argument("--state", choices=["pending", "final", "error"], default="final",
                   help="final: from --verdict-dir; error: no verdict, --description says why")
    h.add_argument("--description", default=None,
                   help="status text for pending and error (cut to 140 characters)")
    h.add_argument("--verdict-dir", default=None, help="the compare output directory")
    h.add_argument("--report-url", default=None)
    h.add_argument("--base-url", default=None, help="GitHub Enterprise API URL")
    h.add_argument("--context", default="performance")
    h.set_defaults(func=_cmd_publish_github)

    p = sub.add_parser("history", help="nightly trends: store, change points")
    hsub = p.add_subparsers(dest="history_command", required=True, metavar="ACTION")
    y = hsub.add_parser("sync", help="add new nightly results to the history database")
    ysrc = y.add_mutually_exclusive_group(required=True)
    ysrc.add_argument("--from-dir", default=None, metavar="DIR",
                      help="a folder with results.json files (searched recursively)")
    ysrc.add_argument("--jenkins", default=None, metavar="JOB",
                      help="a nightly job whose builds archived results.json files")
    y.add_argument("--jenkins-url", default=None, help="default: $JENKINS_URL")
    y.add_argument("--limit", type=int, default=30, help="newest builds to look at (default 30)")
    y.add_argument("--artifact", default=None,
                   metavar="PATH", help="archived results to read, {platform} and {experiment} "
                   "matching any one folder (default: perf/{platform}/{experiment}/results.json)")
    y.add_argument("--db", default=str(_HISTORY_DB), help=f"default: {_HISTORY_DB}")
    y.add_argument("--post", action="store_true",
                   help="announce new steps in gated metrics in the running build's description "
                        "($JOB_NAME #$BUILD_NUMBER) and, with --github-repo, a GitHub issue")
    y.add_argument("--github-repo", default=None, metavar="OWNER/NAME",
                   help="open one issue there for new steps (needs GITHUB_TOKEN)")
    y.add_argument("--github-base-url", default=None, help="GitHub Enterprise API URL")
    y.add_argument("--report-url", default=None, help="link to the published trend plots")
    y.set_defaults(func=_cmd_history_sync)
    y = hsub.add_parser("show", help="per metric: the series' detected steps")
    y.add_argument("--db", default=str(_HISTORY_DB), help=f"default: {_HISTORY_DB}")
    y.add_argument("--experiment", default=None)
    y.add_argument("--platform", default=None)
    y.add_argument("--metric", default=None, help="one metric (gated or not)")
    y.add_argument("--all", action="store_true", help="also the metrics that do not gate")
    y.add_argument("--last", type=int, default=None, metavar="N", help="only the newest N points")
    y.add_argument("--out", default=None, metavar="DIR",
                   help="write history.json and a trend plot per series here")
    y.add_argument("--candidate", default=None, metavar="RESULTS",
                   help="a pull request's results.json: show where its values sit on the trends")
    y.set_defaults(func=_cmd_history_show)

    p = sub.add_parser("bisect", help="find the first commit in GOOD..BAD that made it worse")
    p.add_argument("good", metavar="GOOD")
    p.add_argument("bad", metavar="BAD")
    p.add_argument("experiment", nargs="?", default=None, metavar="EXPERIMENT")
    p.add_argument("--out", default="bisect-out", metavar="DIR",
                   help="report and resumable log (default: bisect-out)")
    p.add_argument("--budget", default=None,
                   help="time per timing step while adding rounds (default: perf_budget)")
    p.add_argument("--rounds", type=int, default=None, help="rounds per side in a timing step")
    p.add_argument("--seed", type=int, default=0, help="seed of the interleaving order")
    p.set_defaults(func=_cmd_bisect)
    return parser


class _Redacting:
    """A text stream that passes everything through secrets.redact on its way out."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _crash(exc: BaseException, debug: bool) -> int:
    """An unexpected exception: one line saying what and where, the traceback in a file."""
    text = redact("".join(traceback.format_exception(exc)))
    frames = traceback.extract_tb(exc.__traceback__)
    package = Path(harness.__file__).resolve().parent
    library = {Path(p).resolve() for k, p in sysconfig.get_paths().items()
               if k in ("stdlib", "platstdlib", "purelib", "platlib")}
    # the deepest frame that is not the standard library or a dependency
    ours = [f for f in frames
            if not library & set(Path(f.filename).resolve().parents)] or frames
    where = ""
    if ours:
        path = Path(ours[-1].filename).resolve()
        shown = f"harness/{path.relative_to(package)}" if package in path.parents else path.name
        where = f" at {shown}:{ours[-1].lineno}"
    log = Path(tempfile.gettempdir()) / CRASH_LOG
    try:
        log.write_text(text, encoding="utf-8")
        saved = f"; the traceback is in {log}"
    except OSError:
        saved = ""
    if debug:
        print(text, file=sys.stderr, end="")
    cause = redact(str(exc)) or "(no message)"
    print(f"harness: internal error: {type(exc).__name__}: {cause}{where}{saved}; run again "
          "with --debug to print it, and report it with that file", file=sys.stderr)
    return int(ExitCode.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: the only place that turns errors into exit codes."""
    from harness.process import Terminated

    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in arguments
    arguments = [a for a in arguments if a != "--debug"]
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Redacting(stdout), _Redacting(stderr)  # type: ignore[assignment]
    try:
        parser = build_parser()
        args = parser.parse_args(arguments)
        func: Callable[[argparse.Namespace], int] = args.func
        return int(func(args))
    except HarnessError as exc:
        from harness.secrets import redact

        print(redact(f"harness: error: {exc}"), file=sys.stderr)
        if debug:
            traceback.print_exc()
        return int(ExitCode.ERROR)
    except Terminated as exc:
        print("harness: terminated (SIGTERM); subjects stopped, no partial results written",
              file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("harness: interrupted; subjects stopped, no partial results written", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as exc:  # pylint: disable=broad-exception-caught  # the error boundary
        return _crash(exc, debug)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = stdout, stderr
