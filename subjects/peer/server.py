"""The peer's lifetime: open the database, serve the API, sync, and stop cleanly on a signal."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from subjects.peer import api, store
from subjects.peer.database import Database
from subjects.peer.downloads import Downloads
from subjects.peer.sync import Syncer


@dataclass(frozen=True)
class ServeConfig:
    """Everything `serve` needs, from the command line."""

    state_dir: Path
    port: int
    mode: str
    peers: tuple[str, ...] = ()
    sync_interval: float = 1.0
    host: str = "127.0.0.1"


async def serve(config: ServeConfig, on_ready: Callable[[str], None]) -> None:
    """Run until SIGTERM/SIGINT (CTRL_BREAK on Windows); `on_ready(url)` once listening."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    db = Database(store.db_path(config.state_dir), config.mode)
    db.open()
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        syncer = Syncer(db, session, list(config.peers), config.sync_interval)
        downloads = Downloads(db, session, list(config.peers), config.state_dir)
        with api.open_access_log(config.state_dir) as access_log:
            runner = web.AppRunner(api.make_app(db, syncer, downloads, access_log),
                                   access_log=None, handle_signals=False)
            await runner.setup()
            try:
                site = web.TCPSite(runner, config.host, config.port)
                await site.start()
                port = runner.addresses[0][1]
                syncer.start()
                on_ready(f"http://{config.host}:{port}")
                await stop.wait()
            finally:
                # Order matters: stop producers of writes, commit what they finished, then close.
                await syncer.stop()
                await downloads.stop()
                await runner.cleanup()
                await db.commit()
                await db.close()


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    if sys.platform == "win32":
        # No add_signal_handler on the Proactor loop; CTRL_BREAK_EVENT arrives as SIGBREAK.
        def handler(_signum: int, _frame: object) -> None:
            loop.call_soon_threadsafe(stop.set)

        for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), handler)
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
