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
