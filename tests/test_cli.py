"""The CLI contract: exit codes and messages."""

from __future__ import annotations

from harness.cli import main


def test_unknown_flag_exits_with_error_code(capsys):
    try:
        main(["compare", "--nope"])
    except SystemExit as exc:
        assert exc.code == 1
    else:  # pragma: no cover
        raise AssertionError("argparse should have exited")
    assert "error" in capsys.readouterr().err


def test_missing_results_file_is_error_1(tmp_path, capsys):
    code = main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out",
                 str(tmp_path / "out")])
    assert code == 1
    assert "no such results file" in capsys.readouterr().err


# -- the error boundary, --out, --rounds, signals, redaction, all-or-nothing outputs ------------

import os  # noqa: E402
import stat  # noqa: E402

import pytest  # noqa: E402

from harness import cli  # noqa: E402
from harness.outputs import FAILED_MARKER  # noqa: E402
from harness.process import Terminated  # noqa: E402
from harness.results import save_results  # noqa: E402


def _boom(exc):
    def run(args):
        raise exc
    return run


def _with_func(monkeypatch, command_func):
    real = cli.build_parser

    def patched():
        parser = real()
        parser.set_defaults(func=command_func)
        for action in parser._subparsers._group_actions:  # noqa: SLF001
            for sub in action.choices.values():
                sub.set_defaults(func=command_func)
        return parser

    monkeypatch.setattr(cli, "build_parser", patched)


def test_an_unexpected_exception_is_one_line_with_the_file_and_debug_hint(monkeypatch, capsys):
    _with_func(monkeypatch, _boom(ValueError("bad thing")))
    assert main(["validate", "x.toml"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "internal error: ValueError: bad thing at test_cli.py:" in err
    assert cli.CRASH_LOG in err and "--debug" in err and len(err.strip().splitlines()) == 1


def test_debug_prints_the_traceback(monkeypatch, capsys):
    _with_func(monkeypatch, _boom(KeyError("k")))
    assert main(["--debug", "validate", "x.toml"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_sigterm_exits_143(monkeypatch, capsys):
    _with_func(monkeypatch, _boom(Terminated(15)))
    assert main(["validate", "x.toml"]) == 143
    assert "terminated" in capsys.readouterr().err


def test_secrets_in_any_message_are_redacted(monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret_marker_42")
    _with_func(monkeypatch, _boom(RuntimeError("url https://u:ghp_secret_marker_42@h/")))
    assert main(["validate", "x.toml"]) == 1
    err = capsys.readouterr().err
    assert "ghp_secret_marker_42" not in err and "***" in err
    log = (cli.Path(cli.tempfile.gettempdir()) / cli.CRASH_LOG).read_text()
    assert "ghp_secret_marker_42" not in log


@pytest.mark.parametrize("rounds", ["0", "-1", "two"])
def test_rounds_must_be_positive(rounds, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "x.toml", "--out", str(tmp_path), "--rounds", rounds])
    assert exc.value.code == 1 and "--rounds" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["compare", "run", "perf"])
def test_an_out_that_is_a_file_is_refused_before_any_work(command, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    args = {"compare": ["compare", "a.json", "b.json"], "run": ["run", "missing.toml"],
            "perf": ["perf", "missing.toml"]}[command]
    assert main([*args, "--out", str(blocker)]) == 1
    assert f"--out {blocker} is a file" in capsys.readouterr().err
    assert main([*args, "--out", str(blocker / "sub")]) == 1
    assert f"is under {blocker}, which is a file" in capsys.readouterr().err


def test_compare_replaces_the_old_outputs_as_a_whole(tmp_path, results, capsys):
    save_results(results, tmp_path / "a.json")
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old session")
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "a.json"), "--out",
                 str(out)]) == 0
    assert "compared with itself" in capsys.readouterr().err
    assert not (out / "stale.txt").exists() and (out / "verdict.json").exists()
    mode = stat.S_IMODE(os.stat(out / "verdict.json").st_mode)
    assert mode & 0o044  # readable by others (umask permitting), not mkstemp's 0600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_a_failed_compare_leaves_the_old_outputs_marked(tmp_path, results):
    save_results(results, tmp_path / "a.json")
    out = tmp_path / "out"
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "a.json"), "--out",
                 str(out)]) == 0
    before = sorted(p.name for p in out.iterdir())
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "nope.json"), "--out",
                 str(out)]) == 1
    after = sorted(p.name for p in out.iterdir())
    assert after == sorted([*before, FAILED_MARKER])
    assert "failed" in (out / FAILED_MARKER).read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    from harness.errors import ConfigError
    from harness.github import outcome_from
    with pytest.raises(ConfigError, match="stale"):
        outcome_from(out)
