"""Sync durability: a peer killed with SIGKILL in the middle of syncing loses nothing it
acknowledged, and a clean stop keeps records and cursors consistent."""

from __future__ import annotations

import sqlite3
import time

import pytest

from subjects.peer import store

from .conftest import seed_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TORRENTS = 30_000


@pytest.fixture(scope="module")
def big_sources(tmp_path_factory):
    base = tmp_path_factory.mktemp("big")
    return (seed_dir(base / "one", seed=11, channels=60, torrents=TORRENTS),
            seed_dir(base / "two", seed=12, channels=60, torrents=TORRENTS))


def _acknowledged_after(peer, commits: int, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = peer.get_json("/statistics")
        if stats["sync"]["commits"] >= commits:
            return stats
        time.sleep(0.02)
    raise AssertionError(f"fewer than {commits} sync commits within {timeout} s")


def _check(path):
    with sqlite3.connect(path) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        return integrity, store.counts(conn)["torrents"], store.sync_state(conn)


@pytest.mark.parametrize("mode", ["blocking", "worker"])
def test_sigkill_mid_sync_keeps_every_acknowledged_commit(spawn, big_sources, tmp_path, mode):
    sources = [spawn(path) for path in big_sources]
    fresh = spawn(tmp_path / "fresh", mode=mode, peers=tuple(s.address for s in sources),
                  sync_interval=0.05)
    acknowledged = _acknowledged_after(fresh, commits=4)
    fresh.proc.kill()  # SIGKILL on POSIX, TerminateProcess on Windows: no cleanup runs
    fresh.proc.wait()

    integrity, torrents, cursors = _check(store.db_path(tmp_path / "fresh"))
    assert integrity == "ok"
    assert torrents >= acknowledged["sync"]["records_synced"] > 0
    for peer, state in acknowledged["sync"]["peers"].items():
        assert cursors[peer]["cursor"] >= state["cursor"]
    # The kill really came in the middle: the sync had not finished.
    assert torrents < 2 * TORRENTS
    # Records and cursors were committed together.
    assert sum(state["records"] for state in cursors.values()) == torrents


def test_a_restarted_peer_resumes_from_its_committed_cursors(spawn, big_sources, tmp_path):
    sources = [spawn(path) for path in big_sources]
    state_dir = tmp_path / "fresh"
    fresh = spawn(state_dir, peers=tuple(s.address for s in sources), sync_interval=0.05)
    _acknowledged_after(fresh, commits=2)
    assert fresh.terminate() == 0  # the clean stop lets the batch in progress commit
    _, torrents, cursors = _check(store.db_path(state_dir))
    assert sum(state["records"] for state in cursors.values()) == torrents

    again = spawn(state_dir, peers=tuple(s.address for s in sources), sync_interval=0.05)
    stats = _acknowledged_after(again, commits=2)  # one batch from each peer
    for peer, state in stats["sync"]["peers"].items():
        assert state["cursor"] > cursors[peer]["cursor"]
