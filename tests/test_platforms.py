"""harness.platforms: the shipped profiles load, and broken ones are refused with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.platforms import default_directory, get_platform, load_platform, load_platforms

ROOT = Path(__file__).resolve().parent.parent
GOOD = """name = "linux"
label = "linux"
perf_label = "perf && linux"
python = "python3"
shell = "sh"
[probes]
io_counters = true
"""


def _write(tmp_path: Path, text: str, name: str = "linux.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_shipped_profiles_cover_three_platforms():
    registry = load_platforms(default_directory(ROOT))
    assert list(registry) == ["linux", "macos", "windows"]
    assert registry["windows"].shell == "bat" and registry["windows"].python_command == ("py", "-3")
    assert registry["linux"].shell == "sh" and registry["linux"].probes.valgrind
    assert not registry["macos"].probes.io_counters  # psutil has no io_counters on macOS
    assert all(p.prepare for p in registry.values())


def test_a_missing_capability_defaults_to_unavailable(tmp_path):
    profile = load_platform(_write(tmp_path, GOOD))
    assert profile.probes.io_counters and not profile.probes.valgrind


@pytest.mark.parametrize("text,message", [
    (GOOD + "valgrnd = true\n", "unknown key"),  # a typo inside [probes]
    (GOOD.replace('shell = "sh"', 'shell = "bash"'), "use one of sh, bat"),
    (GOOD.replace('label = "linux"\n', ""), "`label` is missing"),
    (GOOD.replace("io_counters = true", 'io_counters = "yes"'), "write true or false"),
    (GOOD + "[extra]\n", "unknown key"),
    ("name = ", "not valid TOML"),
])
def test_broken_profiles_are_refused_with_the_file_named(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_platform(path)
    assert str(path) in str(info.value)


def test_the_name_must_match_the_file(tmp_path):
    with pytest.raises(ConfigError, match="must match"):
        load_platform(_write(tmp_path, GOOD, "windows.toml"))


def test_an_unknown_platform_lists_the_known_ones(tmp_path):
    _write(tmp_path, GOOD)
    with pytest.raises(ConfigError, match="known: linux"):
        get_platform("solaris", tmp_path)


def test_an_empty_directory_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no platform profiles"):
        load_platforms(tmp_path)


def test_importing_reads_nothing(monkeypatch, tmp_path):
    import importlib

    import harness.platforms

    monkeypatch.chdir(tmp_path)  # no platforms/ here: an import-time read would fail
    importlib.reload(harness.platforms)


def test_agents_install_tox_with_pipx_and_put_it_on_the_agent_path():
    """`pip install --user` is refused on Debian 12 and Homebrew Python (PEP 668), and the user
    scripts folder is not on a Jenkins agent's PATH (exit 127 / 9009)."""
    registry = load_platforms(Path(__file__).resolve().parent.parent / "platforms")
    for name, profile in registry.items():
        steps = " ".join(profile.prepare)
        assert "pip install --user \"tox" not in steps and "pip install --user 'tox" not in steps
        assert "pipx install" in steps and "PATH+LOCAL=" in steps, name
