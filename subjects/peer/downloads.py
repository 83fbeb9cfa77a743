"""Downloads: fetch a torrent's content blob from other peers in chunks, with progress in the db.

The content of a torrent is deterministic (derived from its infohash), so every peer that knows
the torrent can serve any chunk of it and the downloader writes the same bytes everywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

import aiohttp

from subjects.peer import store
from subjects.peer.database import Database

CHUNK = 64 * 1024
COMMIT_EVERY = 8  # chunks between progress commits
_INFOHASH = re.compile(r"^[0-9a-f]{40}$")


class DownloadError(ValueError):
    """A download request is invalid (the message says why)."""


def blob_size(infohash: str) -> int:
    """The content length of a torrent: between 256 KiB and about 2.3 MiB."""
    return 256 * 1024 + int(infohash[:6], 16) % (2 * 1024 * 1024)


def blob_bytes(infohash: str, offset: int, size: int) -> bytes:
    """Bytes [offset, offset + size) of a torrent's content, clipped to its length."""
    end = min(offset + size, blob_size(infohash))
    if offset >= end:
        return b""
    first, last = offset // CHUNK, (end - 1) // CHUNK
    data = b"".join(_block(infohash, k) for k in range(first, last + 1))
    return data[offset - first * CHUNK:end - first * CHUNK]


def _block(infohash: str, index: int) -> bytes:
    return hashlib.shake_256(f"{infohash}:{index}".encode()).digest(CHUNK)


def check_infohash(infohash: object) -> str:
    """The infohash if it is 40 lowercase hex digits, else DownloadError."""
    if not isinstance(infohash, str) or not _INFOHASH.match(infohash):
        raise DownloadError(f"infohash {infohash!r} is not 40 lowercase hex digits")
    return infohash


class Downloads:
    """Starts and tracks downloads; content goes to state_dir/downloads/<infohash>."""

    def __init__(self, db: Database, session: aiohttp.ClientSession, peers: list[str],
                 state_dir: Path):
        self._db = db
        self._session = session
        self._peers = peers
        self._dir = Path(state_dir) / "downloads"
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self, infohash: object) -> bool:
        """Start downloading; False when this infohash was already started."""
        infohash = check_infohash(infohash)
        if not self._peers:
            raise DownloadError("this peer has no --peers to download from")
        total = blob_size(infohash)
        if not await self._db.run(store.start_download, infohash, total):
            return False
        await self._db.commit()
        self._tasks[infohash] = asyncio.create_task(self._fetch(infohash, total))
        return True

    async def stop(self) -> None:
        """Cancel downloads in progress (their committed progress stays)."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _fetch(self, infohash: str, total: int) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        received, state = 0, "downloading"
        with open(self._dir / infohash, "wb") as out:
            for number, offset in enumerate(range(0, total, CHUNK)):
                data = await self._chunk(infohash, offset, number)
                if data is None:
                    state = "failed"
                    break
                out.write(data)
                received += len(data)
                await self._db.run(store.record_progress, infohash, received, state)
                if number % COMMIT_EVERY == COMMIT_EVERY - 1:
                    await self._db.commit()
        if state != "failed":
            state = "complete"
        await self._db.run(store.record_progress, infohash, received, state)
        await self._db.commit()

    async def _chunk(self, infohash: str, offset: int, number: int) -> bytes | None:
        """Ask the peers in turn (starting with a different one per chunk) until one answers."""
        for attempt in range(len(self._peers)):
            peer = self._peers[(number + attempt) % len(self._peers)]
            url = f"http://{peer}/blobs/{infohash}"
            try:
                async with self._session.get(
                        url, params={"offset": str(offset), "size": str(CHUNK)}) as response:
                    if response.status == 200:
                        return await response.read()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                continue
        return None
