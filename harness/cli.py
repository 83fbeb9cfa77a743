"""The `harness` command: a thin layer that parses flags and calls one library function each."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import harness
from harness.errors import ExitCode, HarnessError


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
    print(f"{args.experiment}: valid")
    return ExitCode.OK


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.experiment import load_experiment
    from harness.runner import run_experiment

    experiment = load_experiment(Path(args.experiment), overrides=_parse_sets(args.set))
    results = run_experiment(
        experiment,
        out_dir=Path(args.out),
        label=args.label,
        rounds=args.rounds,
        progress=not args.quiet,
    )
    print(f"wrote {Path(args.out) / 'results.json'} ({len(results.rounds)} rounds)")
    return ExitCode.OK if results.valid else ExitCode.ERROR


def _cmd_compare(args: argparse.Namespace) -> int:
    from harness.compare import compare, exit_code
    from harness.report import terminal_table, write_reports
    from harness.results import load_results

    comparison = compare(
        load_results(Path(args.baseline)),
        load_results(Path(args.candidate)),
        allow_mismatch=args.allow_mismatch,
    )
    write_reports(comparison, out_dir=Path(args.out), report_url=args.report_url)
    print(terminal_table(comparison))
    return exit_code(comparison, fail_on_inconclusive=args.fail_on_inconclusive)


def _cmd_perf(args: argparse.Namespace) -> int:
    from harness.compare import exit_code
    from harness.perf import run_perf
    from harness.report import terminal_table

    outcome = run_perf(
        experiment_path=Path(args.experiment) if args.experiment else None,
        out_dir=Path(args.out),
        baseline_ref=args.baseline_ref,
        baseline_file=Path(args.baseline) if args.baseline else None,
        baseline_jenkins=args.baseline_jenkins,
        overrides=_parse_sets(args.set),
        baseline_overrides=_parse_sets(args.baseline_set),
        budget=args.budget,
        rounds=args.rounds,
        seed=args.seed,
        report_url=args.report_url,
    )
    report = outcome.report.resolve()
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
    )


def _cmd_coverage_gate(args: argparse.Namespace) -> int:
    from harness.coverage_gate import coverage_gate

    return coverage_gate(
        current=Path(args.current),
        baseline=Path(args.baseline) if args.baseline else None,
        tolerance=args.tolerance,
        changed_files=args.changed_files,
        out=Path(args.out) if args.out else None,
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
    )


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
    p.add_argument("--rounds", type=int, default=None, help="rounds (default: the experiment's)")
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
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("perf", help="baseline and candidate interleaved on this machine")
    p.add_argument("experiment", nargs="?", default=None)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--baseline-ref", default=None, metavar="REF")
    src.add_argument("--baseline", default=None, metavar="FILE")
    src.add_argument("--baseline-jenkins", default=None, metavar="JOB")
    p.add_argument("--out", default="perf-out", metavar="DIR")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--baseline-set", action="append", default=[], metavar="KEY=VALUE",
                   help="variables for the baseline side only (e.g. db=blocking)")
    p.add_argument("--budget", default=None,
                   help="wall time of the whole session, instruction tier included; the looks "
                   "are planned from it (default: the experiment's perf_budget, 5m)")
    p.add_argument("--rounds", type=int, default=None, help="rounds per side to start with")
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
    g.set_defaults(func=_cmd_coverage_gate)

    p = sub.add_parser("publish", help="feedback to code hosts")
    psub = p.add_subparsers(dest="publish_command", required=True, metavar="TARGET")
    h = psub.add_parser("github", help="commit status and one PR comment")
    h.add_argument("--repo", required=True, help="owner/name")
    h.add_argument("--sha", required=True)
    h.add_argument("--pr", type=int, default=None)
    h.add_argument("--state", choices=["pending", "final"], default="final")
    h.add_argument("--verdict-dir", default=None, help="the compare output directory")
    h.add_argument("--report-url", default=None)
    h.add_argument("--base-url", default=None, help="GitHub Enterprise API URL")
    h.add_argument("--context", default="performance")
    h.set_defaults(func=_cmd_publish_github)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: the only place that turns errors into exit codes."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return int(func(args))
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return int(ExitCode.ERROR)
    except KeyboardInterrupt:
        print("harness: interrupted; subjects stopped, no partial results written", file=sys.stderr)
        return 130
