"""The query layer, on real SQLite files: what each endpoint and the sync read and write."""

from __future__ import annotations

import json

import pytest

from subjects.peer import api, store
from subjects.peer.seed import seed


@pytest.fixture
def conn(tmp_path):
    summary = seed(tmp_path / "a", channels=12, torrents=300, seed=1)
    connection = store.connect(summary.path)
    yield connection
    connection.close()


@pytest.fixture
def fresh(tmp_path):
    connection = store.connect(tmp_path / "fresh.db")
    yield connection
    connection.close()


def test_channel_rows_cover_every_channel_with_its_torrent_count(conn):
    rows = json.loads(store.channel_rows_json(conn))
    assert len(rows) == 12
    assert all(len(row) == len(store.CHANNEL_ROW_FIELDS) for row in rows)
    index = store.CHANNEL_ROW_FIELDS.index("torrents")
    assert sum(row[index] for row in rows) == 300
    votes = [row[store.CHANNEL_ROW_FIELDS.index("votes")] for row in rows]
    assert votes == sorted(votes, reverse=True)


def test_channels_document_adds_display_fields(conn):
    document = json.loads(api.channels_document(store.channel_rows_json(conn)))
    first = document["channels"][0]
    assert first["popularity"] == 1.0
    assert first["state"] in {"spam", "subscribed", "discovered"}
    assert first["size_text"].split()[1] in {"B", "KB", "MB", "GB", "TB"}
    assert first["updated_at"].endswith("+00:00")


@pytest.mark.parametrize("padding", [13, 100, 12_345])
def test_channels_padding_adds_exactly_that_many_bytes(conn, padding):
    rows = store.channel_rows_json(conn)
    plain, padded = api.channels_document(rows), api.channels_document(rows, padding=padding)
    assert len(padded) - len(plain) == padding
    assert json.loads(padded)["channels"] == json.loads(plain)["channels"]


def test_records_pulled_from_one_peer_are_stored_by_another(conn, fresh):
    batch = json.loads(json.dumps(store.records_since(conn, 0, 120)))  # as if sent over HTTP
    assert len(batch["torrents"]) == 120
    assert store.insert_channels(fresh, batch["channels"]) == len(batch["channels"])
    assert store.insert_torrents(fresh, batch["torrents"][:50]) == 50
    assert store.insert_torrents(fresh, batch["torrents"]) == 70  # the first 50 are known
    store.set_sync_cursor(fresh, "peer:1", batch["next"], 120)
    fresh.commit()
    assert store.sync_cursor(fresh, "peer:1") == batch["next"] == 120
    rest = store.records_since(conn, batch["next"], 1000)
    assert len(rest["torrents"]) == 180
    assert store.records_since(conn, 300, 10) == {"next": 300, "channels": [], "torrents": []}


def test_torrents_of_unknown_channels_are_skipped(conn, fresh):
    batch = store.records_since(conn, 0, 10)
    assert store.insert_torrents(fresh, batch["torrents"]) == 0


def test_channel_torrents_pages_and_missing_channel(conn):
    full = store.channel_torrents(conn, 1, 0, 1000)
    page = store.channel_torrents(conn, 1, 1, 2)
    assert page["total"] == full["total"] == len(full["torrents"])
    assert page["torrents"] == full["torrents"][2:4]
    assert store.channel_torrents(conn, 999, 0, 10) is None


def test_search_matches_every_word_and_treats_wildcards_literally(conn):
    name = conn.execute("SELECT name FROM torrents WHERE name LIKE '% %' LIMIT 1").fetchone()[0]
    words = name.split()[:2]
    results = store.search_torrents(conn, " ".join(words))
    assert results and all(all(w in r["name"] for w in words) for r in results)
    assert store.search_torrents(conn, "%") == []
    assert store.search_torrents(conn, "   ") == []


def test_download_progress_is_recorded(fresh):
    assert store.start_download(fresh, "ab" * 20, 1000)
    assert not store.start_download(fresh, "ab" * 20, 1000)
    store.record_progress(fresh, "ab" * 20, 250, "downloading")
    [download] = store.list_downloads(fresh)
    assert (download["received"], download["progress"], download["state"]) == (250, 0.25,
                                                                                "downloading")


def test_rollback_drops_uncommitted_records(conn, fresh):
    batch = store.records_since(conn, 0, 20)
    store.insert_channels(fresh, batch["channels"])
    store.insert_torrents(fresh, batch["torrents"])
    store.rollback(fresh)
    assert store.counts(fresh)["torrents"] == 0
