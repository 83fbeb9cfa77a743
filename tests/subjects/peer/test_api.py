"""The REST API of a real peer process on a free port, in both database modes."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from subjects.peer import store
from subjects.peer.downloads import blob_bytes, blob_size

from .conftest import seed_dir

pytestmark = pytest.mark.integration


def _wait_for(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(params=["blocking", "worker"])
def mode(request):
    return request.param


@pytest.fixture
def seeded(tmp_path):
    return seed_dir(tmp_path / "peer", seed=5, channels=25, torrents=800)


def test_read_endpoints(spawn, seeded, mode):
    peer = spawn(seeded, mode=mode)
    assert peer.get_json("/health") == {"status": "ok", "db": mode}

    channels = peer.get_json("/channels")["channels"]
    assert len(channels) == 25
    assert sum(c["torrents"] for c in channels) == 800
    assert {"public_key", "name", "description", "votes", "size_text"} <= set(channels[0])

    page = peer.get_json(f"/channels/{channels[0]['id']}/torrents?page=0&size=3")
    assert page["total"] == channels[0]["torrents"]
    assert len(page["torrents"]) == min(3, page["total"])
    assert peer.get("/channels/9999/torrents")[0] == 404
    assert peer.get("/channels/1/torrents?size=0")[0] == 400
    assert peer.get("/channels/1/torrents?page=x")[0] == 400

    word = page["torrents"][0]["name"].split()[0]
    results = peer.get_json(f"/search?q={word}")["results"]
    assert results and all(word in r["name"] for r in results)

    stats = peer.get_json("/statistics")
    assert stats["counts"]["channels"] == 25 and stats["counts"]["torrents"] == 800
    assert stats["database"]["mode"] == mode
    assert stats["database"]["queue_depth"] == 0
    assert stats["sync"]["records_synced"] == 0
    assert stats["uptime_s"] > 0


def test_peer_endpoints_serve_records_and_blobs(spawn, seeded):
    peer = spawn(seeded)
    first = peer.get_json("/sync?since=0&limit=100")
    assert len(first["torrents"]) == 100 and first["next"] == 100
    assert peer.get_json("/sync?since=800")["torrents"] == []
    assert peer.get("/sync?limit=999999")[0] == 400

    infohash = first["torrents"][0][1]
    status, body = peer.get(f"/blobs/{infohash}?offset=1000&size=5000")
    assert status == 200 and body == blob_bytes(infohash, 1000, 5000)
    assert peer.get("/blobs/" + "0" * 40)[0] == 404
    assert peer.get("/blobs/nothex")[0] == 400


def test_access_log_has_a_line_per_request(spawn, seeded):
    peer = spawn(seeded)
    for _ in range(3):
        peer.get("/health")
    peer.get("/channels/9999/torrents")
    assert peer.terminate() == 0
    lines = (seeded / "access.log").read_text().splitlines()
    assert sum('"GET /health" 200' in line for line in lines) == 3
    assert any('"GET /channels/9999/torrents" 404' in line for line in lines)


def test_fresh_peer_syncs_and_downloads_from_seeded_peers(spawn, seeded_sources, tmp_path, mode):
    sources = [spawn(path) for path in seeded_sources]
    fresh = spawn(tmp_path / "fresh", mode=mode, peers=tuple(s.address for s in sources),
                  sync_interval=0.1)

    def synced():
        stats = fresh.get_json("/statistics")
        return stats if stats["sync"]["records_synced"] == 6000 else None

    stats = _wait_for(synced, "the fresh peer to sync 2 x 3000 records")
    assert stats["counts"]["torrents"] == 6000
    assert stats["counts"]["channels"] == 40
    assert stats["sync"]["commits"] >= 2 and stats["sync"]["bytes_received"] > 0
    assert stats["sync"]["errors"] == 0

    infohash = sources[0].get_json("/sync?since=0&limit=1")["torrents"][0][1]
    status, body = fresh.post_json("/downloads", {"infohash": infohash})
    assert (status, body["started"]) == (201, True)
    assert fresh.post_json("/downloads", {"infohash": infohash})[1]["started"] is False
    assert fresh.post_json("/downloads", {"infohash": "nope"})[0] == 400

    def complete():
        [download] = fresh.get_json("/downloads")["downloads"]
        return download if download["state"] != "downloading" else None

    download = _wait_for(complete, "the download to finish")
    assert download["state"] == "complete" and download["progress"] == 1.0
    content = (tmp_path / "fresh" / "downloads" / infohash).read_bytes()
    assert content == blob_bytes(infohash, 0, blob_size(infohash))

    assert fresh.terminate() == 0
    with sqlite3.connect(store.db_path(tmp_path / "fresh")) as conn:
        assert store.counts(conn)["torrents"] == 6000
        assert store.list_downloads(conn)[0]["state"] == "complete"


def test_port_zero_prints_the_real_port(spawn, seeded):
    peer = spawn(seeded)
    host, port = peer.address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert json.loads(peer.get("/health")[1])["status"] == "ok"
