"""Background sync (the Dispersy load): pull new records from every peer and store them.

Each round asks each peer for batches of records after the last committed cursor, writes a batch
in chunks of `tuning.SYNC_CHUNK` records (one database call each) and commits records and cursor
together, so a crash never loses an acknowledged batch and never records a cursor without its
records. In worker
mode every chunk is a separate queued call, so requests interleave with a long batch; in blocking
mode the chunks run back to back on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass

import aiohttp

from subjects.peer import store, tuning
from subjects.peer.database import Database


@dataclass
class SyncCounters:
    """What the sync achieved; only committed work is counted as synced."""

    rounds: int = 0
    records_received: int = 0
    records_synced: int = 0
    bytes_received: int = 0
    commits: int = 0
    errors: int = 0
    last_error: str = ""


class Syncer:
    """Runs sync rounds every `interval` seconds until stopped."""

    def __init__(self, db: Database, session: aiohttp.ClientSession, peers: list[str],
                 interval: float, batch: int = tuning.SYNC_BATCH,
                 per_round: int = tuning.SYNC_PER_ROUND, chunk: int = tuning.SYNC_CHUNK):
        self._db = db
        self._session = session
        self._peers = peers
        self._interval = interval
        self._batch = batch
        self._per_round = per_round
        self._chunk = chunk
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.counters = SyncCounters()

    def start(self) -> None:
        """Begin syncing in the background (no-op without peers or with interval 0)."""
        if self._peers and self._interval > 0:
            self._task = asyncio.create_task(self._loop(), name="sync")

    async def stop(self, timeout: float = 10.0) -> None:
        """Let the batch in progress commit, then end; cancel it if it takes longer than timeout."""
        self._stopping.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except asyncio.TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            for peer in self._peers:
                if self._stopping.is_set():
                    return
                await self._round(peer)
            self.counters.rounds += 1
            try:
                await asyncio.wait_for(self._stopping.wait(), self._interval)
            except asyncio.TimeoutError:
                pass

    async def _round(self, peer: str) -> None:
        """Pull batches from one peer until it has no more or `per_round` records arrived."""
        received = 0
        while received < self._per_round and not self._stopping.is_set():
            count = await self.pull(peer)
            received += count
            if count < self._batch:
                return

    async def pull(self, peer: str) -> int:
        """One batch from one peer, committed on its own; returns how many records arrived."""
        try:
            cursor = await self._db.run(store.sync_cursor, peer)
            url = f"http://{peer}/sync"
            params = {"since": str(cursor), "limit": str(self._batch)}
            async with self._session.get(url, params=params) as response:
                response.raise_for_status()
                body = await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            self.counters.errors += 1
            self.counters.last_error = f"{peer}: {exc!r}"
            return 0
        self.counters.bytes_received += len(body)
        try:
            batch = json.loads(body)
            if not batch["torrents"]:
                return 0
            await self._store(peer, batch)
            return len(batch["torrents"])
        except (ValueError, KeyError, TypeError, IndexError, sqlite3.Error) as exc:
            # A peer sent garbage: drop the part of the batch already written, keep syncing.
            await self._db.run(store.rollback)
            self.counters.errors += 1
            self.counters.last_error = f"{peer}: unusable batch: {exc!r}"
            return 0

    async def _store(self, peer: str, batch: dict) -> None:
        await self._db.run(store.insert_channels, batch["channels"])
        torrents = batch["torrents"]
        new = 0
        for start in range(0, len(torrents), self._chunk):
            new += await self._db.run(store.insert_torrents, torrents[start:start + self._chunk])
        await self._db.run(store.set_sync_cursor, peer, batch["next"], new)
        await self._db.commit()
        # Counted only after the commit returned: /statistics never claims what a crash could lose.
        self.counters.records_received += len(torrents)
        self.counters.records_synced += new
        self.counters.commits += 1
