"""Seeding: deterministic content, the shared channel set, and refusing to overwrite."""

from __future__ import annotations

import sqlite3

import pytest

from subjects.peer import store
from subjects.peer.__main__ import main
from subjects.peer.seed import SeedError, seed


def _dump(path, table):
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


def test_same_arguments_give_identical_databases(tmp_path):
    a = seed(tmp_path / "a", channels=15, torrents=400, seed=3)
    b = seed(tmp_path / "b", channels=15, torrents=400, seed=3)
    for table in ("channels", "torrents", "peers"):
        assert _dump(a.path, table) == _dump(b.path, table)
    assert len(_dump(a.path, "torrents")) == 400


def test_other_seeds_share_channels_but_not_torrents(tmp_path):
    a = seed(tmp_path / "a", channels=15, torrents=400, seed=1)
    b = seed(tmp_path / "b", channels=15, torrents=400, seed=2)
    assert _dump(a.path, "channels") == _dump(b.path, "channels")
    hashes_a = {row[1] for row in _dump(a.path, "torrents")}
    hashes_b = {row[1] for row in _dump(b.path, "torrents")}
    assert not hashes_a & hashes_b


def test_existing_database_is_refused_unless_forced(tmp_path):
    seed(tmp_path, channels=3, torrents=10)
    with pytest.raises(SeedError, match="--force"):
        seed(tmp_path, channels=3, torrents=10)
    again = seed(tmp_path, channels=4, torrents=20, force=True)
    with sqlite3.connect(again.path) as conn:
        assert store.counts(conn)["channels"] == 4
        assert store.counts(conn)["torrents"] == 20


def test_cli_refusal_exits_1_with_the_fix_in_the_message(tmp_path, capsys):
    args = ["seed", "--state-dir", str(tmp_path), "--channels", "3", "--torrents", "10"]
    assert main(args) == 0
    assert "3 channels, 10 torrents" in capsys.readouterr().out
    assert main(args) == 1
    err = capsys.readouterr().err
    assert str(store.db_path(tmp_path)) in err
    assert "--force" in err
    assert main([*args, "--force"]) == 0


def test_torrents_need_a_channel(tmp_path):
    with pytest.raises(SeedError, match="--channels"):
        seed(tmp_path, channels=0, torrents=5)
