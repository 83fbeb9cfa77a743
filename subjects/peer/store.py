"""The query layer: plain functions over one sqlite3 connection, shared by both database modes.

Every function takes the connection as its first argument and neither commits nor knows which
thread it runs on; `database.py` decides that. Keeping one layer for both modes is what makes the
blocking/worker comparison isolate the threading model and nothing else.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DB_NAME = "peer.db"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS channels (
    id INTEGER PRIMARY KEY,
    public_key TEXT NOT NULL UNIQUE,
    dispersy_cid TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    created INTEGER NOT NULL,
    modified INTEGER NOT NULL,
    votes INTEGER NOT NULL,
    spam INTEGER NOT NULL,
    subscribed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS torrents (
    id INTEGER PRIMARY KEY,
    infohash TEXT NOT NULL UNIQUE,
    channel_id INTEGER NOT NULL REFERENCES channels(id),
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    size INTEGER NOT NULL,
    files INTEGER NOT NULL,
    added INTEGER NOT NULL
);
-- Covers the per-channel statistics of /channels, so they come from the index alone.
CREATE INDEX IF NOT EXISTS torrents_channel ON torrents(channel_id, added, size, category);
CREATE TABLE IF NOT EXISTS peers (
    id INTEGER PRIMARY KEY,
    public_key TEXT NOT NULL UNIQUE,
    address TEXT NOT NULL,
    last_seen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_state (
    peer TEXT PRIMARY KEY,
    cursor INTEGER NOT NULL,
    records INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS downloads (
    infohash TEXT PRIMARY KEY,
    total INTEGER NOT NULL,
    received INTEGER NOT NULL,
    state TEXT NOT NULL
);
"""

CHANNEL_COLUMNS = ("id", "public_key", "dispersy_cid", "name", "description", "created",
                   "modified", "votes", "spam", "subscribed")
TORRENT_COLUMNS = ("infohash", "name", "category", "size", "files", "added")


def db_path(state_dir: Path) -> Path:
    """Where a state directory keeps its database."""
    return Path(state_dir) / DB_NAME


def connect(path: Path) -> sqlite3.Connection:
    """Open the database in WAL mode with a full sync per commit (durable acknowledged commits)."""
    conn = sqlite3.connect(path, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    create_schema(conn)
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    """Create missing tables; an existing database is left as it is."""
    conn.executescript(_SCHEMA)
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    conn.commit()


# -- reads for the REST API ----------------------------------------------------------------------

# SQLite encodes the rows itself: the call is one statement step, during which the sqlite3 module
# releases the GIL, instead of one GIL round trip per row (which a busy event loop thread would turn
# into a convoy of 5 ms switch intervals for the worker thread).
_CHANNEL_ROWS_JSON = """
SELECT json_group_array(json_array(id, public_key, dispersy_cid, name, description, created,
                                   modified, votes, spam, subscribed, torrents, total_size,
                                   last_added, categories))
FROM (
    SELECT c.*, COUNT(t.id) AS torrents, COALESCE(SUM(t.size), 0) AS total_size,
           COALESCE(MAX(t.added), 0) AS last_added, COUNT(DISTINCT t.category) AS categories
    FROM channels c LEFT JOIN torrents t ON t.channel_id = c.id
    GROUP BY c.id ORDER BY c.votes DESC, c.id
)
"""
CHANNEL_ROW_FIELDS = (*CHANNEL_COLUMNS, "torrents", "total_size", "last_added", "categories")


def channel_rows_json(conn: sqlite3.Connection) -> str:
    """Every channel with its torrent statistics, most voted first, as a JSON array of rows
    (fields in CHANNEL_ROW_FIELDS order)."""
    return conn.execute(_CHANNEL_ROWS_JSON).fetchone()[0]


def channel_torrents(conn: sqlite3.Connection, channel_id: int, page: int,
                     size: int) -> dict[str, Any] | None:
    """One page of a channel's torrents, newest first; None when the channel does not exist."""
    if conn.execute("SELECT 1 FROM channels WHERE id = ?", (channel_id,)).fetchone() is None:
        return None
    total = conn.execute("SELECT COUNT(*) FROM torrents WHERE channel_id = ?",
                         (channel_id,)).fetchone()[0]
    rows = conn.execute(
        "SELECT infohash, name, category, size, files, added FROM torrents WHERE channel_id = ?"
        " ORDER BY added DESC, id DESC LIMIT ? OFFSET ?", (channel_id, size, page * size),
    ).fetchall()
    return {"channel_id": channel_id, "page": page, "size": size, "total": total,
            "torrents": [dict(zip(TORRENT_COLUMNS, row, strict=True)) for row in rows]}


def search_torrents(conn: sqlite3.Connection, query: str, limit: int = 50) -> list[dict[str, Any]]:
    """Torrents whose name contains every word of the query (case-insensitive)."""
    words = [w for w in query.split() if w][:5]
    if not words:
        return []
    where = " AND ".join("name LIKE ? ESCAPE '\\'" for _ in words)
    params = [f"%{_escape_like(w)}%" for w in words]
    rows = conn.execute(
        f"SELECT infohash, name, category, size, files, added FROM torrents WHERE {where}"
        " ORDER BY added DESC LIMIT ?", (*params, limit),
    ).fetchall()
    return [dict(zip(TORRENT_COLUMNS, row, strict=True)) for row in rows]


def _escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Row counts of the main tables."""
    out = {}
    for table in ("channels", "torrents", "peers", "downloads"):
        out[table] = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    return out


def torrent_exists(conn: sqlite3.Connection, infohash: str) -> bool:
    """Whether this peer knows the torrent (and so may serve its content)."""
    row = conn.execute("SELECT 1 FROM torrents WHERE infohash = ?", (infohash,)).fetchone()
    return row is not None


# -- sync: serving records to other peers, and storing what we pulled ----------------------------

def records_since(conn: sqlite3.Connection, since: int, limit: int) -> dict[str, Any]:
    """Torrents with id > since (oldest first) plus the channels they belong to."""
    rows = conn.execute(
        "SELECT t.id, c.public_key, t.infohash, t.name, t.category, t.size, t.files, t.added"
        " FROM torrents t JOIN channels c ON c.id = t.channel_id WHERE t.id > ?"
        " ORDER BY t.id LIMIT ?", (since, limit),
    ).fetchall()
    keys = sorted({row[1] for row in rows})
    channels = []
    for start in range(0, len(keys), 500):
        part = keys[start:start + 500]
        marks = ",".join("?" * len(part))
        channels += conn.execute(
            "SELECT public_key, dispersy_cid, name, description, created, modified, votes"
            f" FROM channels WHERE public_key IN ({marks})", part,
        ).fetchall()
    return {
        "next": rows[-1][0] if rows else since,
        "channels": [list(c) for c in channels],
        "torrents": [list(r[1:]) for r in rows],
    }


def _items(alias: str, first: int, last: int) -> str:
    return ", ".join(f"json_extract({alias}.value, '$[{i}]')" for i in range(first, last + 1))


def insert_channels(conn: sqlite3.Connection, channels: Sequence[Sequence[Any]]) -> int:
    """Store channels pulled from a peer (public_key, cid, name, description, created, modified,
    votes); known ones are kept. Returns how many were new."""
    before = conn.total_changes
    # Handed to SQLite as one JSON array: one statement step for the whole list, so the GIL is
    # released for all of it (executemany would take it back after every row).
    conn.execute(
        "INSERT OR IGNORE INTO channels (public_key, dispersy_cid, name, description, created,"
        f" modified, votes, spam, subscribed) SELECT {_items('j', 0, 6)}, 0, 0"
        " FROM json_each(?) j ORDER BY j.key", (json.dumps(list(channels)),),
    )
    return conn.total_changes - before


def insert_torrents(conn: sqlite3.Connection, torrents: Sequence[Sequence[Any]]) -> int:
    """Store torrents pulled from a peer (channel public_key, infohash, name, category, size, files,
    added); torrents of unknown channels are skipped. Returns how many were new."""
    before = conn.total_changes
    conn.execute(
        "INSERT OR IGNORE INTO torrents (channel_id, infohash, name, category, size, files, added)"
        f" SELECT c.id, {_items('j', 1, 6)} FROM json_each(?) j"
        " JOIN channels c ON c.public_key = json_extract(j.value, '$[0]') ORDER BY j.key",
        (json.dumps(list(torrents)),),
    )
    return conn.total_changes - before


def rollback(conn: sqlite3.Connection) -> None:
    """Undo everything since the last commit."""
    conn.rollback()


def sync_cursor(conn: sqlite3.Connection, peer: str) -> int:
    """The id of the last record pulled from `peer` and committed (0 if none)."""
    row = conn.execute("SELECT cursor FROM sync_state WHERE peer = ?", (peer,)).fetchone()
    return row[0] if row else 0


def set_sync_cursor(conn: sqlite3.Connection, peer: str, cursor: int, records: int) -> None:
    """Advance the cursor of `peer` in the same transaction as the records it covers."""
    conn.execute(
        "INSERT INTO sync_state VALUES (?, ?, ?) ON CONFLICT(peer) DO UPDATE SET"
        " cursor = excluded.cursor, records = sync_state.records + excluded.records",
        (peer, cursor, records),
    )


def sync_state(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Per peer: committed cursor and how many new records it brought."""
    rows = conn.execute("SELECT peer, cursor, records FROM sync_state ORDER BY peer").fetchall()
    return {peer: {"cursor": cursor, "records": records} for peer, cursor, records in rows}


# -- downloads ------------------------------------------------------------------------------------

def start_download(conn: sqlite3.Connection, infohash: str, total: int) -> bool:
    """Record a new download; False when it already exists."""
    before = conn.total_changes
    conn.execute("INSERT OR IGNORE INTO downloads VALUES (?, ?, 0, 'downloading')",
                 (infohash, total))
    return conn.total_changes > before


def record_progress(conn: sqlite3.Connection, infohash: str, received: int, state: str) -> None:
    """Store how many bytes of a download arrived, and its state."""
    conn.execute("UPDATE downloads SET received = ?, state = ? WHERE infohash = ?",
                 (received, state, infohash))


def list_downloads(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every download with its progress."""
    rows = conn.execute("SELECT infohash, total, received, state FROM downloads"
                        " ORDER BY infohash").fetchall()
    return [{"infohash": h, "total": t, "received": r, "state": s,
             "progress": round(r / t, 4) if t else 1.0} for h, t, r, s in rows]
