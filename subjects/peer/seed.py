"""Deterministic seeding of a peer's state directory: channels, torrents and known peers.

Channels depend only on their index, so every peer seeded with the same --channels knows the same
community of channels; torrents and peers depend on --seed, so peers seeded with different seeds
hold different torrents and syncing between them brings real new records.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from subjects.peer import store

_WORDS = (
    "open", "source", "lecture", "concert", "archive", "nature", "space", "ocean", "history",
    "science", "linux", "python", "music", "jazz", "classic", "film", "short", "documentary",
    "public", "domain", "creative", "commons", "video", "audio", "book", "library", "physics",
    "mountain", "river", "city", "night", "summer", "winter", "garden", "travel", "remix",
    "live", "session", "tutorial", "course", "radio", "podcast", "retro", "game", "art",
    "photo", "collection", "volume", "edition", "season",
)
_CATEGORIES = ("video", "audio", "document", "software", "image", "other")
_EPOCH = 1_450_000_000  # a fixed "now" so timestamps are deterministic


class SeedError(Exception):
    """The state directory cannot be seeded as asked (the message says how to fix it)."""


@dataclass(frozen=True)
class SeedSummary:
    """What a seeding run wrote."""

    path: Path
    channels: int
    torrents: int
    peers: int


def seed(state_dir: Path, *, channels: int = 1200, torrents: int = 100_000, seed: int = 0,
         peers: int = 500, force: bool = False) -> SeedSummary:
    """Write a deterministic database into `state_dir`; refuse an existing one unless force."""
    if channels < 1 and torrents > 0:
        raise SeedError(f"--torrents {torrents} needs at least one channel (--channels 1 or more)")
    state_dir = Path(state_dir)
    path = store.db_path(state_dir)
    if path.exists() and not force:
        raise SeedError(f"{path} already exists; pass --force to replace it, "
                        "or choose an empty --state-dir")
    state_dir.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    conn = store.connect(path)
    try:
        _fill(conn, channels=channels, torrents=torrents, seed=seed, peers=peers)
    finally:
        conn.close()
    return SeedSummary(path=path, channels=channels, torrents=torrents, peers=peers)


def _fill(conn: sqlite3.Connection, *, channels: int, torrents: int, seed: int,
          peers: int) -> None:
    # One transaction and executemany: seeding 100,000 torrents takes about a second, not minutes.
    conn.execute("PRAGMA synchronous=OFF")
    with conn:
        conn.executemany("INSERT INTO channels VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (channel_row(i) for i in range(channels)))
        rng = random.Random(seed)
        conn.executemany(
            "INSERT INTO torrents (infohash, channel_id, name, category, size, files, added)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (_torrent_row(rng, seed, j, channels) for j in range(torrents)),
        )
        conn.executemany("INSERT INTO peers (public_key, address, last_seen) VALUES (?, ?, ?)",
                         (_peer_row(rng, seed, k) for k in range(peers)))
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                         [("seed", str(seed)), ("seed_channels", str(channels)),
                          ("seed_torrents", str(torrents))])
    conn.execute("PRAGMA synchronous=FULL")


def channel_row(index: int) -> tuple[object, ...]:
    """The channel with this index, the same on every peer."""
    rng = random.Random(f"channel-{index}")
    key = hashlib.sha256(f"channel-{index}".encode()).hexdigest()
    name = " ".join(rng.choice(_WORDS) for _ in range(3)).title()
    description = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 18)))
    created = _EPOCH - rng.randint(86_400, 86_400 * 900)
    return (index + 1, key, key[:40], name, description, created,
            created + rng.randint(0, 86_400 * 30), int(rng.paretovariate(1.2)) * 3,
            int(rng.random() < 0.02), int(rng.random() < 0.05))


def _torrent_row(rng: random.Random, seed: int, j: int, channels: int) -> tuple[object, ...]:
    infohash = hashlib.sha1(f"torrent-{seed}-{j}".encode()).hexdigest()
    channel = int(channels * rng.random() ** 2) + 1  # popular channels hold more torrents
    name = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 6)))
    size = int(rng.lognormvariate(19, 1.5))
    return (infohash, channel, name, rng.choice(_CATEGORIES), size, rng.randint(1, 40),
            _EPOCH - rng.randint(0, 86_400 * 365))


def _peer_row(rng: random.Random, seed: int, k: int) -> tuple[object, ...]:
    key = hashlib.sha256(f"peer-{seed}-{k}".encode()).hexdigest()
    address = f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}:7759"
    return (key, address, _EPOCH - rng.randint(0, 86_400 * 7))
